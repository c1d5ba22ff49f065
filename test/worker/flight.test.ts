import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { heldKey } from '../../src/worker/fetcher.js'
import { createFlight, settlesWithin, waitUntil } from '../../src/worker/flight.js'
import type { Work } from '../../src/worker/types.js'
import { makeJob, makeWork } from './work-fixtures.js'

const now = 1_700_000_000_000

/** Work for a distinct entry of stream `streamIndex`. */
function entry(n: number, streamIndex = 1): Work {
  const work = makeWork(makeJob({ id: `job-${n}` }))
  return { ...work, delivery: { ...work.delivery, streamIndex, entryId: `${now}-${n}` } }
}

beforeEach(() => {
  vi.useFakeTimers({ now })
})

afterEach(() => {
  vi.useRealTimers()
})

describe('createFlight', () => {
  test('take holds the entry and a slot, keyed by stream and entry id', () => {
    const flight = createFlight(2)
    const work = entry(1)
    const key = flight.take(work)
    expect(key).toBe(heldKey(1, `${now}-1`))
    expect(flight.count).toBe(1)
    expect(flight.sending()).toBe(1)
    expect(flight.held.get(key as string)).toEqual({ streamIndex: 1, entryId: `${now}-1`, keptAt: now })
  })

  test('an entry in flight here already is not taken twice, even as another Work object', () => {
    const flight = createFlight(4)
    const work = entry(1)
    expect(flight.take(work)).toBeDefined()
    expect(flight.take(work)).toBeUndefined()
    expect(flight.take({ ...work, attempts: 1 })).toBeUndefined()
    expect(flight.count).toBe(1)
    expect(flight.sending()).toBe(1)
    // The same entry id in another stream is another entry.
    expect(flight.take(entry(1, 2))).toBeDefined()
    expect(flight.count).toBe(2)
  })

  test('free: the slots left, and no more than 4 rounds in flight with outcomes waiting', () => {
    const flight = createFlight(2)
    expect(flight.free()).toBe(2)
    const works = Array.from({ length: 8 }, (_, n) => entry(n))
    flight.take(works[0] as Work)
    expect(flight.free()).toBe(1)
    flight.take(works[1] as Work)
    expect(flight.free()).toBe(0)
    // Sends over, outcomes not yet written: the slots are free again.
    expect(flight.releaseSlot(works[0] as Work)).toBe(true)
    expect(flight.releaseSlot(works[1] as Work)).toBe(true)
    expect(flight.free()).toBe(2)
    expect(flight.count).toBe(2)
    for (const work of works.slice(2, 6)) {
      flight.take(work)
      flight.releaseSlot(work)
    }
    expect(flight.count).toBe(6)
    expect(flight.free()).toBe(2)
    flight.take(works[6] as Work)
    flight.releaseSlot(works[6] as Work)
    expect(flight.free()).toBe(1)
    flight.take(works[7] as Work)
    flight.releaseSlot(works[7] as Work)
    // Eight outcomes waiting for a slow Redis: no fetching until some are written.
    expect(flight.sending()).toBe(0)
    expect(flight.free()).toBe(0)
  })

  test('releaseSlot is true only for work that holds a slot', () => {
    const flight = createFlight(1)
    const work = entry(1)
    expect(flight.releaseSlot(work)).toBe(false)
    flight.take(work)
    expect(flight.releaseSlot(work)).toBe(true)
    expect(flight.releaseSlot(work)).toBe(false)
  })

  test('finish drops the work, its hold and its slot; the entry may then be taken again', () => {
    const flight = createFlight(1)
    const work = entry(1)
    const key = flight.take(work) as string
    // Finished without its slot released (abandoned at a hard stop).
    flight.finish(work, key)
    expect(flight.count).toBe(0)
    expect(flight.sending()).toBe(0)
    expect(flight.held.size).toBe(0)
    expect(flight.free()).toBe(1)
    expect(flight.take(work)).toBe(key)
  })

  test('drain gives the outcomes written since the last drain, then starts again from 0', () => {
    const flight = createFlight(1)
    expect(flight.drain()).toBe(0)
    flight.processed()
    flight.processed()
    flight.processed()
    expect(flight.drain()).toBe(3)
    expect(flight.drain()).toBe(0)
    flight.processed()
    expect(flight.drain()).toBe(1)
  })
})

describe('settlesWithin', () => {
  test('true when the promise resolves or rejects in time, and no timer is left', async () => {
    await expect(settlesWithin(Promise.resolve('x'), 1000)).resolves.toBe(true)
    await expect(settlesWithin(Promise.reject(new Error('failed')), 1000)).resolves.toBe(true)
    expect(vi.getTimerCount()).toBe(0)
  })

  test('true for a promise that settles before the bound', async () => {
    const late = new Promise<void>((resolve) => setTimeout(resolve, 500))
    const result = settlesWithin(late, 1000)
    await vi.advanceTimersByTimeAsync(500)
    await expect(result).resolves.toBe(true)
    expect(vi.getTimerCount()).toBe(0)
  })

  test('false once the bound passes first, not before', async () => {
    let ended: boolean | undefined
    void settlesWithin(new Promise(() => {}), 1000).then((value) => {
      ended = value
    })
    await vi.advanceTimersByTimeAsync(999)
    expect(ended).toBeUndefined()
    await vi.advanceTimersByTimeAsync(1)
    expect(ended).toBe(false)
  })
})

describe('waitUntil', () => {
  test('true at once when the predicate already holds', async () => {
    await expect(waitUntil(() => true, 0)).resolves.toBe(true)
  })

  test('true once the predicate holds, checked again every 10 ms', async () => {
    let ready = false
    const predicate = vi.fn(() => ready)
    let ended: boolean | undefined
    void waitUntil(predicate, 1000).then((value) => {
      ended = value
    })
    await vi.advanceTimersByTimeAsync(100)
    expect(ended).toBeUndefined()
    expect(predicate.mock.calls.length).toBeGreaterThanOrEqual(10)
    expect(predicate.mock.calls.length).toBeLessThanOrEqual(12)
    ready = true
    await vi.advanceTimersByTimeAsync(10)
    expect(ended).toBe(true)
  })

  test('false when the timeout passes first, and it stops checking', async () => {
    const predicate = vi.fn(() => false)
    let ended: boolean | undefined
    void waitUntil(predicate, 200).then((value) => {
      ended = value
    })
    await vi.advanceTimersByTimeAsync(190)
    expect(ended).toBeUndefined()
    await vi.advanceTimersByTimeAsync(20)
    expect(ended).toBe(false)
    const calls = predicate.mock.calls.length
    await vi.advanceTimersByTimeAsync(1000)
    expect(predicate.mock.calls.length).toBe(calls)
    expect(vi.getTimerCount()).toBe(0)
  })

  test('a zero timeout checks once', async () => {
    const predicate = vi.fn(() => false)
    await expect(waitUntil(predicate, 0)).resolves.toBe(false)
    expect(predicate).toHaveBeenCalledTimes(1)
  })
})
