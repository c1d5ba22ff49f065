import { describe, expect, test, vi } from 'vitest'
import { MailstreamError, TransportError } from '../../src/errors.js'
import { createEvents, toEvents, toMailstreamError } from '../../src/worker/events.js'
import type { Failure, Outcome, Processed } from '../../src/worker/types.js'
import { makeJob, makeWork } from './work-fixtures.js'

const job = makeJob({ id: 'job-7' })
const work = makeWork(job)
const dueAt = 1_700_000_005_000

const processed = (outcome: Outcome, attempts: number, failure?: Failure, overrides: Partial<Processed> = {}) => ({
  work,
  job,
  attempts,
  outcome,
  ...(failure && { failure }),
  ...overrides,
})

const later: Failure = { error: new Error('ECONNRESET'), retry: 'later' }
const throttle: Failure = { error: new TransportError('rate exceeded', { retry: 'throttle' }), retry: 'throttle' }
const never: Failure = { error: new TransportError('550 no such user', { retry: 'never' }), retry: 'never' }

describe('toMailstreamError', () => {
  test('a MailstreamError is passed on as it is', () => {
    const error = new MailstreamError('E_TIMEOUT', 'slow')
    expect(toMailstreamError(error, 'reading')).toBe(error)
  })

  test('anything else becomes E_REDIS, saying what failed, with the thrown value as cause', () => {
    const cause = new Error('ECONNREFUSED 127.0.0.1:6379')
    const error = toMailstreamError(cause, 'fetching jobs failed')
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error.code).toBe('E_REDIS')
    expect(error.message).toBe('[mailstream] fetching jobs failed: ECONNREFUSED 127.0.0.1:6379')
    expect(error.cause).toBe(cause)
    expect(toMailstreamError('just text', 'a listener threw').message).toBe('[mailstream] a listener threw: just text')
  })
})

describe('createEvents', () => {
  test('listeners get the payload; on() returns an unsubscribe for that listener only', () => {
    const events = createEvents()
    const first = vi.fn()
    const second = vi.fn()
    const off = events.on('drained', first)
    events.on('drained', second)
    events.emit('drained', { processed: 3 })
    expect(first).toHaveBeenCalledWith({ processed: 3 })
    off()
    off()
    events.emit('drained', { processed: 1 })
    expect(first).toHaveBeenCalledTimes(1)
    expect(second).toHaveBeenCalledTimes(2)
  })

  test('emitting with no listener is fine', () => {
    expect(() => createEvents().emit('paused', { reason: 'x' })).not.toThrow()
  })

  test("a listener's throw becomes an error event; the other listeners still run", () => {
    const events = createEvents()
    const thrown = new Error('listener bug')
    const errors: MailstreamError[] = []
    const after = vi.fn()
    events.on('error', (error) => errors.push(error))
    events.on('sent', () => {
      throw thrown
    })
    events.on('sent', after)
    expect(() => events.emit('sent', { id: 'job-7', job, messageId: 'm', attempts: 1 })).not.toThrow()
    expect(after).toHaveBeenCalledTimes(1)
    expect(errors).toHaveLength(1)
    expect(errors[0]?.message).toContain("a 'sent' listener threw: listener bug")
    expect(errors[0]?.cause).toBe(thrown)
  })

  test('an error listener that throws is not reported again (no loop) and does not throw out', () => {
    const events = createEvents()
    const errorListener = vi.fn(() => {
      throw new Error('error listener bug')
    })
    events.on('error', errorListener)
    events.on('paused', () => {
      throw new Error('paused listener bug')
    })
    expect(() => events.emit('paused', { reason: 'x' })).not.toThrow()
    expect(errorListener).toHaveBeenCalledTimes(1)
  })
})

describe('toEvents', () => {
  test('sent: one sent event, rejected only when there were some', () => {
    expect(toEvents(processed({ kind: 'sent', messageId: 'm-1' }, 1), true)).toStrictEqual([
      ['sent', { id: 'job-7', job, messageId: 'm-1', attempts: 1 }],
    ])
    const partly = toEvents(processed({ kind: 'sent', messageId: 'm-2', rejected: ['x@example.com'] }, 2), true)
    expect(partly).toStrictEqual([
      ['sent', { id: 'job-7', job, messageId: 'm-2', rejected: ['x@example.com'], attempts: 2 }],
    ])
  })

  test('a retry: failed (not final), then retrying with its due time', () => {
    const events = toEvents(processed({ kind: 'retry', dueAt, error: 'ECONNRESET' }, 1, later), true)
    expect(events).toStrictEqual([
      ['failed', { id: 'job-7', job, attempts: 1, error: later.error, retry: 'later', final: false }],
      ['retrying', { id: 'job-7', job, attempts: 1, error: 'ECONNRESET', retryAt: dueAt, throttled: false }],
    ])
  })

  test('a throttle from the transport: failed, then retrying marked throttled', () => {
    const events = toEvents(processed({ kind: 'throttle', dueAt, error: 'rate exceeded' }, 0, throttle), true)
    expect(events.map(([name]) => name)).toEqual(['failed', 'retrying'])
    expect(events[0]?.[1]).toMatchObject({ retry: 'throttle', final: false, attempts: 0 })
    expect(events[1]?.[1]).toMatchObject({ throttled: true, retryAt: dueAt, attempts: 0 })
  })

  test('a re-delay by the pacing (no failed try): retrying only', () => {
    const events = toEvents(processed({ kind: 'throttle', dueAt, error: 'daily quota reached' }, 0), true)
    expect(events).toStrictEqual([
      ['retrying', { id: 'job-7', job, attempts: 0, error: 'daily quota reached', retryAt: dueAt, throttled: true }],
    ])
  })

  test('dead after a failed try: failed (final), then dead', () => {
    const events = toEvents(processed({ kind: 'dead', error: '550 no such user' }, 1, never), true)
    expect(events).toStrictEqual([
      ['failed', { id: 'job-7', job, attempts: 1, error: never.error, retry: 'never', final: true }],
      ['dead', { id: 'job-7', job, attempts: 1, error: '550 no such user' }],
    ])
  })

  test('dead without a try (unreadable payload): dead only, job null, id from the entry', () => {
    const unreadable = makeWork(null)
    const events = toEvents(
      processed({ kind: 'dead', error: 'job payload is not readable JSON' }, 0, undefined, {
        work: unreadable,
        job: null,
      }),
      true,
    )
    expect(events).toStrictEqual([
      ['dead', { id: 'job-1', job: null, attempts: 0, error: 'job payload is not readable JSON' }],
    ])
  })

  test('suppressed: the suppressed addresses of the entry', () => {
    const suppressedWork = makeWork(job, { suppressed: ['ada@example.com'] })
    const events = toEvents(
      processed({ kind: 'suppressed', reason: 'suppressed: ada@example.com' }, 0, undefined, { work: suppressedWork }),
      true,
    )
    expect(events).toStrictEqual([['suppressed', { id: 'job-7', job, addresses: ['ada@example.com'] }]])
  })

  test('not applied (another delivery was recorded first): no outcome event', () => {
    const outcomes: Outcome[] = [
      { kind: 'sent', messageId: 'm' },
      { kind: 'retry', dueAt, error: 'e' },
      { kind: 'throttle', dueAt, error: 'e' },
      { kind: 'dead', error: 'e' },
      { kind: 'suppressed', reason: 'r' },
    ]
    for (const outcome of outcomes) expect(toEvents(processed(outcome, 1), false)).toEqual([])
  })

  test('not applied after a failed try: the failed event only', () => {
    const retried = toEvents(processed({ kind: 'retry', dueAt, error: 'ECONNRESET' }, 1, later), false)
    expect(retried.map(([name]) => name)).toEqual(['failed'])
    expect(retried[0]?.[1]).toMatchObject({ retry: 'later', final: false })
    const dead = toEvents(processed({ kind: 'dead', error: '550' }, 1, never), false)
    expect(dead.map(([name]) => name)).toEqual(['failed'])
  })

  // When another delivery of the job was recorded first, this one dead-letters nothing and no
  // `dead` event follows, so its `failed` event is not final.
  test('final is false when the dead outcome was not applied', () => {
    const [failed] = toEvents(processed({ kind: 'dead', error: '550' }, 1, never), false)
    expect(failed?.[1]).toMatchObject({ final: false })
  })
})
