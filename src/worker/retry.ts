import { describeError, MailstreamError, type RetryClass, TransportError } from '../errors.js'
import type { Failure, Outcome } from './types.js'

/** Consecutive throttles of one job before it is dead, when the policy names no `maxThrottles`. */
export const DEFAULT_MAX_THROTTLES = 50

export interface RetryPolicy {
  backoff: { baseMs: number; maxMs: number }
  /** Delay after a throttle when the transport gives no `retryAfterMs`. */
  throttleDelayMs: number
  /**
   * Throttles in a row that one job may get (they use no attempt); the next one makes it dead, so
   * that a transport that calls everything a throttle cannot hold a job forever. Default 50.
   */
  maxThrottles?: number
}

interface Classified {
  retry: RetryClass
  retryAfterMs?: number
  pause: boolean
}

const PERMANENT_CODES = ['E_TEMPLATE', 'E_CONFIG', 'E_VALIDATION']

/** How a failure is handled: the transport's own class, else by what failed. Never throws. */
export function classify(error: unknown): Classified {
  try {
    if (error instanceof TransportError) {
      return {
        retry: error.retry,
        pause: error.pause,
        ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }),
      }
    }
    if (error instanceof MailstreamError && PERMANENT_CODES.includes(error.code))
      return { retry: 'never', pause: false }
    // A stack overflow (deeply nested input) fails the same way every time.
    if (error instanceof RangeError) return { retry: 'never', pause: false }
  } catch {
    // a hostile thrown value (a throwing Proxy): retried, counted
  }
  // Unknown errors (network, bugs in a custom transport) are retried: losing mail is worse.
  return { retry: 'later', pause: false }
}

const jitter = (ms: number) => Math.round(ms * (0.8 + Math.random() * 0.4))

export interface Decision {
  outcome: Outcome
  /** Attempts used so far, this try included unless it was a throttle. */
  attempts: number
  /** Throttles in a row after this try: one more than before for a throttle, else 0. */
  throttles: number
  failure: Failure
  /** The transport asked the worker to pause; the text says why. */
  pause?: string
}

/** The thrown value as an Error; a hostile one (a Proxy whose traps throw) as a new Error of its description. */
function asError(error: unknown, reason: string): Error {
  try {
    if (error instanceof Error) return error
  } catch {}
  return new Error(reason)
}

/**
 * What happens after a failed try (`attempts` counts it already; `throttles` is how many throttles
 * in a row came before it): a throttle re-delays without using an attempt, up to `maxThrottles` in
 * a row; a transient failure is retried after `baseMs * 2^attempts` (±20 %) until `maxAttempts`;
 * anything else is dead.
 */
export function decide(
  error: unknown,
  attempts: number,
  maxAttempts: number,
  policy: RetryPolicy,
  now = Date.now(),
  throttles = 0,
): Decision {
  const { retry, retryAfterMs, pause } = classify(error)
  const reason = describeError(error)
  const failure: Failure = { error: asError(error, reason), retry }
  const decision = (outcome: Outcome, used = attempts, inRow = 0): Decision => ({
    outcome,
    attempts: used,
    throttles: inRow,
    failure,
    ...(pause && { pause: reason }),
  })
  if (retry === 'throttle') {
    const maxThrottles = policy.maxThrottles ?? DEFAULT_MAX_THROTTLES
    if (throttles >= maxThrottles) {
      const error = `throttled ${throttles + 1} times in a row (maxThrottles ${maxThrottles}): ${reason}`
      return decision({ kind: 'dead', error }, attempts - 1, throttles + 1)
    }
    const delay = Math.max(retryAfterMs ?? 0, jitter(policy.throttleDelayMs))
    return decision({ kind: 'throttle', dueAt: now + delay, error: reason }, attempts - 1, throttles + 1)
  }
  if (retry === 'later' && attempts < maxAttempts) {
    const backoff = Math.min(policy.backoff.maxMs, policy.backoff.baseMs * 2 ** attempts)
    return decision({ kind: 'retry', dueAt: now + Math.max(retryAfterMs ?? 0, jitter(backoff)), error: reason })
  }
  return decision({ kind: 'dead', error: reason })
}
