import { describe, expect, test } from 'vitest'
import { TransportError } from '../../src/errors.js'
import { DEFAULT_MAX_THROTTLES, decide, type RetryPolicy } from '../../src/worker/retry.js'

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
