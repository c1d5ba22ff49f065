import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { type AimdOptions, createPace, type PaceEvent } from '../../src/worker/pace.js'

const aimd: AimdOptions = { decrease: 0.5, increase: 0.1, intervalMs: 1000 }

/** A pace of 100/s that records its events. */
function makePace(options: Partial<AimdOptions> = {}, perSecond = 100) {
  const events: PaceEvent[] = []
  const pace = createPace(perSecond, { ...aimd, ...options }, (event) => events.push(event))
  return { pace, events }
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 })
})

afterEach(() => {
  vi.useRealTimers()
})

describe('at full pace', () => {
  test('no own limit: room is unbounded and bookings never wait', () => {
    const { pace, events } = makePace()
    expect(pace.pace).toBe(100)
    expect(pace.room(100)).toEqual({ units: Number.POSITIVE_INFINITY, waitMs: 0 })
    for (let i = 0; i < 1000; i++) expect(pace.book(50, 10)).toBe(0)
    expect(events).toEqual([])
  })
})

describe('throttled', () => {
  test('lowers the pace by the decrease factor and reports it', () => {
    const { pace, events } = makePace()
    pace.throttled()
    expect(pace.pace).toBe(50)
    expect(events).toEqual([{ pace: 50, perSecond: 100, reason: 'throttle' }])
  })

  test('one decrease per interval: the throttles of sends already in flight do not count', () => {
    const { pace, events } = makePace()
    pace.throttled()
    vi.advanceTimersByTime(500)
    pace.throttled()
    pace.throttled()
    expect(pace.pace).toBe(50)
    expect(events).toHaveLength(1)
    vi.advanceTimersByTime(500)
    // One interval later the pace had climbed a step (60), and is halved from there.
    pace.throttled()
    expect(pace.pace).toBe(30)
    expect(events.at(-1)).toEqual({ pace: 30, perSecond: 100, reason: 'throttle' })
  })

  test('never below minPerSecond (default perSecond / 20)', () => {
    const { pace, events } = makePace({ decrease: 0.1, increase: 0.001 })
    for (let i = 0; i < 3; i++) {
      pace.throttled()
      vi.advanceTimersByTime(1000)
    }
    const lowered = events.filter((event) => event.reason === 'throttle').map((event) => event.pace)
    expect(lowered).toEqual([10, 5, 5])
  })

  test('an explicit minPerSecond is the floor; one above perSecond does not raise the pace', () => {
    const { pace } = makePace({ decrease: 0.1, minPerSecond: 30 })
    pace.throttled()
    expect(pace.pace).toBe(30)
    const high = makePace({ minPerSecond: 500 })
    high.pace.throttled()
    expect(high.pace.pace).toBe(100)
  })

  test('lowers from the observed rate when this worker sent less than its pace', () => {
    const { pace } = makePace()
    pace.record(10)
    vi.advanceTimersByTime(250)
    pace.record(10)
    vi.advanceTimersByTime(250)
    pace.record(10)
    // 30 units within 500 ms: 60/s observed, halved.
    pace.throttled()
    expect(pace.pace).toBe(30)
  })

  test('an observed rate over less than 250 ms, or older than a second, says nothing', () => {
    const short = makePace()
    short.pace.record(1)
    vi.advanceTimersByTime(100)
    short.pace.record(1)
    short.pace.throttled()
    expect(short.pace.pace).toBe(50)

    const old = makePace()
    old.pace.record(1)
    vi.advanceTimersByTime(1500)
    old.pace.throttled()
    expect(old.pace.pace).toBe(50)
  })
})

describe('recovery', () => {
  test('climbs back one step (increase * perSecond) per interval, reported as it is seen', () => {
    const { pace, events } = makePace()
    pace.throttled()
    vi.advanceTimersByTime(2500)
    // Reading the pace is quiet.
    expect(pace.pace).toBe(70)
    expect(events).toHaveLength(1)
    pace.room(0)
    expect(events.at(-1)).toEqual({ pace: 70, perSecond: 100, reason: 'recover' })
    // The same pace is reported once.
    pace.room(0)
    pace.book(1, 10_000)
    expect(events).toHaveLength(2)
  })

  test('back at perSecond it reports once and stops limiting', () => {
    const { pace, events } = makePace()
    pace.throttled()
    vi.advanceTimersByTime(10_000)
    expect(pace.room(0)).toEqual({ units: Number.POSITIVE_INFINITY, waitMs: 0 })
    expect(events.at(-1)).toEqual({ pace: 100, perSecond: 100, reason: 'recover' })
    vi.advanceTimersByTime(10_000)
    pace.room(0)
    expect(pace.book(10, 0)).toBe(0)
    expect(events).toHaveLength(2)
    expect(pace.pace).toBe(100)
  })

  test('never above perSecond', () => {
    const { pace, events } = makePace({ increase: 0.3 })
    pace.throttled()
    vi.advanceTimersByTime(2000)
    pace.room(0)
    expect(pace.pace).toBe(100)
    expect(events.every((event) => event.pace <= 100)).toBe(true)
  })
})

describe('the own schedule while lowered', () => {
  test('book spaces units by 1000 / pace ms', () => {
    const { pace } = makePace()
    pace.throttled() // 50/s: 20 ms per unit
    expect(pace.book(1, 1000)).toBe(0)
    expect(pace.book(1, 1000)).toBe(20)
    expect(pace.book(5, 1000)).toBe(40)
    expect(pace.book(1, 1000)).toBe(140)
    vi.advanceTimersByTime(100)
    expect(pace.book(1, 1000)).toBe(60)
  })

  test('a wait longer than maxWaitMs gives a delay and books nothing', () => {
    const { pace } = makePace()
    pace.throttled()
    expect(pace.book(10, 1000)).toBe(0) // the next unit may start 200 ms from now
    expect(pace.book(1, 100)).toEqual({
      kind: 'delay',
      retryAfterMs: 200,
      reason: "this worker's pace is 50.00/s",
    })
    expect(pace.book(1, 1000)).toBe(200)
  })

  test('room: the units that may start within the lookahead, else when to ask again', () => {
    const { pace } = makePace()
    pace.throttled()
    // 50/s over 100 ms: 5 more after the one that may start now.
    expect(pace.room(100)).toEqual({ units: 6, waitMs: 0 })
    expect(pace.room(0)).toEqual({ units: 1, waitMs: 0 })
    pace.book(50, 10_000) // the next unit may start 1000 ms from now
    expect(pace.room(100)).toEqual({ units: 0, waitMs: 900 })
    vi.advanceTimersByTime(950)
    expect(pace.room(100)).toEqual({ units: 3, waitMs: 0 })
  })
})
