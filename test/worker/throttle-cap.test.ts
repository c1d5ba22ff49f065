import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { TransportError } from '../../src/errors.js'
import type { RetryingEvent } from '../../src/index.js'
import { createSmtpTransport, type SmtpTransport } from '../../src/transports/smtp.js'
import { DEFAULT_MAX_THROTTLES, decide, type RetryPolicy } from '../../src/worker/retry.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'
import { type SmtpLocal, startSmtpLocal } from '../helpers/smtp-local.js'

const policy: RetryPolicy = { backoff: { baseMs: 1000, maxMs: 60_000 }, throttleDelayMs: 500, maxThrottles: 3 }
const now = 1_700_000_000_000
const throttle = () => new TransportError('[mailstream] [smtp] 454 Throttling failure', { retry: 'throttle' })
const later = () => new TransportError('[mailstream] [smtp] 451 4.3.0 try later', { retry: 'later' })

describe('consecutive throttles of one job are capped', () => {
  test('each throttle counts one more in a row and uses no attempt, up to maxThrottles', () => {
    for (let before = 0; before < 3; before++) {
      const decision = decide(throttle(), 2, 3, policy, now, before)
      expect(decision).toMatchObject({ outcome: { kind: 'throttle' }, attempts: 1, throttles: before + 1 })
    }
  })

  test('the throttle after maxThrottles in a row makes the job dead, saying why', () => {
    const decision = decide(throttle(), 2, 3, policy, now, 3)
    expect(decision).toMatchObject({ outcome: { kind: 'dead' }, attempts: 1, throttles: 4 })
    expect(decision.outcome).toMatchObject({
      error: 'throttled 4 times in a row (maxThrottles 3): [mailstream] [smtp] 454 Throttling failure',
    })
    expect(decision.failure.retry).toBe('throttle')
  })

  test('any other failure ends the run of throttles', () => {
    expect(decide(later(), 1, 3, policy, now, 3)).toMatchObject({ outcome: { kind: 'retry' }, throttles: 0 })
    expect(decide(new Error('x'), 3, 3, policy, now, 2)).toMatchObject({ outcome: { kind: 'dead' }, throttles: 0 })
  })

  test(`without maxThrottles the cap is ${DEFAULT_MAX_THROTTLES}; callers that pass no count start from 0`, () => {
    const { maxThrottles: _cap, ...defaults } = policy
    expect(decide(throttle(), 1, 3, defaults, now, DEFAULT_MAX_THROTTLES - 1).outcome.kind).toBe('throttle')
    expect(decide(throttle(), 1, 3, defaults, now, DEFAULT_MAX_THROTTLES).outcome.kind).toBe('dead')
    expect(decide(throttle(), 1, 3, policy, now)).toMatchObject({ outcome: { kind: 'throttle' }, throttles: 1 })
  })
})

describe('queue -> worker -> SMTP that throttles without end', () => {
  const redis = connect()
  // One server per test: faults queued by one test are not left for the next.
  let smtp: SmtpLocal
  let transport: SmtpTransport
  beforeEach(async () => {
    smtp = await startSmtpLocal()
    transport = createSmtpTransport({ options: { host: '127.0.0.1', port: smtp.port, secure: false } })
  })
  afterEach(async () => {
    await transport?.close()
    await smtp?.close()
  })

  test('the throttle count survives each trip through the delayed set, and the job ends dead', async () => {
    const { queue, worker, settled } = harness(redis)
    const w = worker({ transport, concurrency: 1, maxThrottles: 5 })
    const retrying: RetryingEvent[] = []
    const dead: string[] = []
    w.on('retrying', (event) => retrying.push(event))
    w.on('dead', ({ error }) => dead.push(error))
    await w.start()
    smtp.fail(454, { stage: 'mail', times: 1000, text: 'Throttling failure: Maximum sending rate exceeded.' })
    const { id } = await queue.enqueue(testJob({ maxAttempts: 3 }))
    // Throttles use no attempt: the job is dead with none used, after 5 throttles and the 6th.
    expect(await settled(id, 20_000)).toMatchObject({ status: 'dead', attempts: 0 })
    expect(retrying).toHaveLength(5)
    expect(retrying.every((event) => event.throttled && event.attempts === 0)).toBe(true)
    expect(dead).toEqual([expect.stringMatching(/^throttled 6 times in a row \(maxThrottles 5\): .*454 Throttling/)])
    const [letter] = await queue.deadLetters.list()
    expect(letter).toMatchObject({ id, attempts: 0, error: expect.stringContaining('maxThrottles 5') })
  })

  test('a transient failure ends the run: the count starts again after it', async () => {
    const { queue, worker, settled } = harness(redis)
    const w = worker({ transport, concurrency: 1, maxThrottles: 2 })
    const retrying: RetryingEvent[] = []
    w.on('retrying', (event) => retrying.push(event))
    await w.start()
    const rate = 'Throttling failure: Maximum sending rate exceeded.'
    // throttle, throttle, 451, throttle, throttle, then delivered: never 3 throttles in a row.
    smtp.fail(454, { stage: 'mail', times: 2, text: rate })
    smtp.fail(451, { stage: 'mail', text: '4.3.0 Temporary local problem' })
    smtp.fail(454, { stage: 'mail', times: 2, text: rate })
    const { id } = await queue.enqueue(testJob({ maxAttempts: 3 }))
    expect(await settled(id, 20_000)).toMatchObject({ status: 'sent', attempts: 2 })
    expect(retrying.map((event) => event.throttled)).toEqual([true, true, false, true, true])
  })
})
