import { afterEach, describe, expect, test, vi } from 'vitest'
import { MailstreamError, TransportError } from '../../src/errors.js'
import { classify, decide, type RetryPolicy } from '../../src/worker/retry.js'

const policy: RetryPolicy = { backoff: { baseMs: 1000, maxMs: 60_000 }, throttleDelayMs: 500 }
const now = 1_700_000_000_000

/** Pins the jitter: 0 gives the lowest factor (0.8), 0.5 none (1.0), just under 1 the highest (1.2). */
const pinRandom = (value: number) => vi.spyOn(Math, 'random').mockReturnValue(value)

/** The delay a decision gives after `now`. */
const delayOf = (error: unknown, attempts: number, maxAttempts = 10, withPolicy = policy): number => {
  const { outcome } = decide(error, attempts, maxAttempts, withPolicy, now)
  if (outcome.kind !== 'retry' && outcome.kind !== 'throttle') throw new Error(`expected a delay, got ${outcome.kind}`)
  return outcome.dueAt - now
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe('classify', () => {
  test('a TransportError keeps its own class, retryAfterMs and pause', () => {
    expect(classify(new TransportError('slow down', { retry: 'throttle', retryAfterMs: 1234 }))).toEqual({
      retry: 'throttle',
      retryAfterMs: 1234,
      pause: false,
    })
    expect(classify(new TransportError('paused', { retry: 'never', pause: true }))).toEqual({
      retry: 'never',
      pause: true,
    })
    expect(classify(new TransportError('blip', { retry: 'later' }))).toEqual({ retry: 'later', pause: false })
  })

  test.each(['E_TEMPLATE', 'E_CONFIG', 'E_VALIDATION'] as const)('%s fails the same way every time: never', (code) => {
    expect(classify(new MailstreamError(code, 'bad'))).toEqual({ retry: 'never', pause: false })
  })

  test('a stack overflow (RangeError) is never retried', () => {
    expect(classify(new RangeError('Maximum call stack size exceeded'))).toEqual({ retry: 'never', pause: false })
  })

  test.each([
    ['a Redis error', new MailstreamError('E_REDIS', 'down')],
    ['a timeout', new MailstreamError('E_TIMEOUT', 'slow')],
    ['a plain Error', new Error('ECONNRESET')],
    ['a TypeError from a buggy transport', new TypeError('x is undefined')],
    ['a thrown string', 'oops'],
    ['null', null],
    ['undefined', undefined],
  ])('%s is retried later', (_name, error) => {
    expect(classify(error)).toEqual({ retry: 'later', pause: false })
  })

  test('a value whose property reads throw is retried, not thrown', () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('no reading')
        },
      },
    )
    expect(classify(hostile)).toEqual({ retry: 'later', pause: false })
  })
})

describe('decide: transient failures', () => {
  test('retried after baseMs * 2^attempts, within ±20 %, using the attempt', () => {
    const error = new Error('ECONNRESET')
    const decision = decide(error, 1, 3, policy, now)
    expect(decision.outcome).toMatchObject({ kind: 'retry', error: 'ECONNRESET' })
    expect(decision.attempts).toBe(1)
    expect(decision.failure).toEqual({ error, retry: 'later' })
    expect(decision).not.toHaveProperty('pause')
    for (let i = 0; i < 50; i++) {
      const delay = delayOf(error, 1)
      expect(delay).toBeGreaterThanOrEqual(1600)
      expect(delay).toBeLessThanOrEqual(2400)
    }
  })

  test('the jitter spans 0.8 to 1.2 of the backoff', () => {
    pinRandom(0)
    expect(delayOf(new Error('x'), 2)).toBe(3200)
    pinRandom(0.999_999)
    expect(delayOf(new Error('x'), 2)).toBe(4800)
  })

  test('the backoff doubles with each attempt', () => {
    pinRandom(0.5)
    expect([1, 2, 3, 4, 5].map((attempts) => delayOf(new Error('x'), attempts))).toEqual([
      2000, 4000, 8000, 16_000, 32_000,
    ])
  })

  test('the backoff stops growing at maxMs (the jitter still applies)', () => {
    pinRandom(0.5)
    expect(delayOf(new Error('x'), 6)).toBe(60_000)
    expect(delayOf(new Error('x'), 30, 100)).toBe(60_000)
    // 2^2000 is Infinity: still capped, never a NaN or infinite due time.
    expect(delayOf(new Error('x'), 2000, 5000)).toBe(60_000)
    pinRandom(0)
    expect(delayOf(new Error('x'), 30, 100)).toBe(48_000)
    pinRandom(0.999_999)
    expect(delayOf(new Error('x'), 30, 100)).toBe(72_000)
  })

  test("a longer retryAfterMs from the transport wins over the backoff, a shorter one doesn't", () => {
    pinRandom(0.5)
    expect(delayOf(new TransportError('busy', { retry: 'later', retryAfterMs: 10_000 }), 1)).toBe(10_000)
    expect(delayOf(new TransportError('busy', { retry: 'later', retryAfterMs: 10 }), 1)).toBe(2000)
  })

  test('dead once the attempts are used up', () => {
    const error = new Error('ECONNRESET')
    expect(decide(error, 2, 3, policy, now).outcome.kind).toBe('retry')
    const last = decide(error, 3, 3, policy, now)
    expect(last.outcome).toEqual({ kind: 'dead', error: 'ECONNRESET' })
    expect(last.attempts).toBe(3)
    expect(last.failure.retry).toBe('later')
    expect(decide(error, 4, 3, policy, now).outcome.kind).toBe('dead')
    expect(decide(error, 1, 1, policy, now).outcome.kind).toBe('dead')
  })

  test('the due time is counted from Date.now() by default', () => {
    vi.useFakeTimers({ now })
    try {
      pinRandom(0.5)
      const { outcome } = decide(new Error('x'), 1, 3, policy)
      expect(outcome).toMatchObject({ kind: 'retry', dueAt: now + 2000 })
    } finally {
      vi.useRealTimers()
    }
  })
})

describe('decide: permanent failures', () => {
  test.each([
    ['a TransportError that says never', new TransportError('550 no such user', { retry: 'never' })],
    ['a template error', new MailstreamError('E_TEMPLATE', 'unknown template')],
    ['a config error', new MailstreamError('E_CONFIG', 'no templates')],
    ['a validation error', new MailstreamError('E_VALIDATION', 'bad address')],
    ['a stack overflow', new RangeError('Maximum call stack size exceeded')],
  ])('%s is dead at the first attempt', (_name, error) => {
    const decision = decide(error, 1, 10, policy, now)
    expect(decision.outcome.kind).toBe('dead')
    expect(decision.attempts).toBe(1)
    expect(decision.failure).toEqual({ error, retry: 'never' })
  })

  test('a transport that asks to pause gives the reason, whatever the outcome', () => {
    const error = new TransportError('[mailstream] [ses] sending paused for the account', {
      retry: 'never',
      pause: true,
    })
    const decision = decide(error, 1, 3, policy, now)
    expect(decision.outcome.kind).toBe('dead')
    expect(decision.pause).toBe('[mailstream] [ses] sending paused for the account')
    const retried = decide(new TransportError('paused', { retry: 'later', pause: true }), 1, 3, policy, now)
    expect(retried.outcome.kind).toBe('retry')
    expect(retried.pause).toBe('[mailstream] paused')
  })
})

describe('decide: throttles', () => {
  test('re-delayed without using an attempt, after about throttleDelayMs', () => {
    const error = new TransportError('rate exceeded', { retry: 'throttle' })
    const decision = decide(error, 1, 3, policy, now)
    expect(decision.outcome).toMatchObject({ kind: 'throttle', error: '[mailstream] rate exceeded' })
    expect(decision.attempts).toBe(0)
    expect(decision.failure).toEqual({ error, retry: 'throttle' })
    for (let i = 0; i < 50; i++) {
      const delay = delayOf(error, 1)
      expect(delay).toBeGreaterThanOrEqual(400)
      expect(delay).toBeLessThanOrEqual(600)
    }
  })

  test('the delay does not grow with the attempts', () => {
    pinRandom(0.5)
    const error = new TransportError('rate exceeded', { retry: 'throttle' })
    expect([1, 2, 5, 9].map((attempts) => delayOf(error, attempts))).toEqual([500, 500, 500, 500])
  })

  test('a throttle when the attempts are used up is still a throttle, not dead', () => {
    const decision = decide(new TransportError('rate exceeded', { retry: 'throttle' }), 3, 3, policy, now)
    expect(decision.outcome.kind).toBe('throttle')
    expect(decision.attempts).toBe(2)
  })

  test("the transport's retryAfterMs wins when longer", () => {
    pinRandom(0.5)
    const longWait = new TransportError('daily quota exceeded', { retry: 'throttle', retryAfterMs: 3_600_000 })
    expect(delayOf(longWait, 1)).toBe(3_600_000)
    expect(delayOf(new TransportError('rate', { retry: 'throttle', retryAfterMs: 1 }), 1)).toBe(500)
  })
})

describe('decide: what is thrown', () => {
  test('a value that is not an Error becomes one, described on one line', () => {
    const decision = decide('line one\nline two', 1, 3, policy, now)
    expect(decision.outcome).toMatchObject({ kind: 'retry', error: 'line one line two' })
    expect(decision.failure.error).toBeInstanceOf(Error)
    expect(decision.failure.error.message).toBe('line one line two')
  })

  test('an object without a prototype is described, not thrown', () => {
    const decision = decide(Object.create(null), 1, 3, policy, now)
    expect(decision.outcome.kind).toBe('retry')
    expect(decision.failure.error.message).toMatch(/unreadable/)
  })

  // `error instanceof Error` calls a Proxy's getPrototypeOf trap: a throw there must not escape
  // decide, or process.ts could not record the failed attempt.
  test('a Proxy whose every trap throws is retried, not thrown', () => {
    const fail = () => {
      throw new Error('hostile')
    }
    const hostile = new Proxy({}, { get: fail, has: fail, getPrototypeOf: fail, ownKeys: fail })
    const decision = decide(hostile, 1, 3, policy, now)
    expect(decision.outcome.kind).toBe('retry')
    expect(decision.attempts).toBe(1)
  })
})
