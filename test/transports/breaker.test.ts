import { describe, expect, test } from 'vitest'
import { type BreakerState, createBreaker } from '../../src/transports/breaker.js'

function setup(overrides: { failures?: number; windowMs?: number; openMs?: number } = {}) {
  let time = 1_000_000
  const changes: { from: BreakerState; to: BreakerState; at: number }[] = []
  const breaker = createBreaker({
    failures: 3,
    windowMs: 10_000,
    openMs: 5_000,
    ...overrides,
    now: () => time,
    onChange: (change) => changes.push(change),
  })
  return {
    breaker,
    changes,
    advance(ms: number) {
      time += ms
    },
    get time() {
      return time
    },
  }
}

describe('createBreaker', () => {
  test('opens after `failures` failures within the window, and refuses sends while open', () => {
    const { breaker, changes, time } = setup()
    breaker.failure()
    breaker.failure()
    expect(breaker.state).toBe('closed')
    expect(breaker.acquire()).toBe(true)
    breaker.failure()
    expect(breaker.state).toBe('open')
    expect(breaker.openedAt).toBe(time)
    expect(breaker.acquire()).toBe(false)
    expect(breaker.retryAfterMs()).toBe(5_000)
    expect(changes).toEqual([{ from: 'closed', to: 'open', at: time }])
  })

  test('failures older than the window do not count', () => {
    const { breaker, advance } = setup()
    breaker.failure()
    advance(1)
    breaker.failure()
    advance(9_999)
    // The first one is 10 s old now: out of the window.
    breaker.failure()
    expect(breaker.state).toBe('closed')
    breaker.failure()
    expect(breaker.state).toBe('open')
  })

  test('a success forgets the failures before it', () => {
    const { breaker } = setup()
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    expect(breaker.state).toBe('closed')
  })

  test('half-open after openMs: one probe at a time, its success closes the breaker', () => {
    const { breaker, changes, advance } = setup({ failures: 1 })
    breaker.failure()
    advance(4_999)
    expect(breaker.state).toBe('open')
    expect(breaker.retryAfterMs()).toBe(1)
    advance(1)
    expect(breaker.state).toBe('half-open')
    expect(breaker.retryAfterMs()).toBe(0)
    expect(breaker.acquire()).toBe(true)
    expect(breaker.acquire()).toBe(false)
    breaker.success()
    expect(breaker.state).toBe('closed')
    expect(breaker.openedAt).toBeUndefined()
    expect(breaker.acquire()).toBe(true)
    expect(breaker.acquire()).toBe(true)
    expect(changes.map(({ to }) => to)).toEqual(['open', 'half-open', 'closed'])
  })

  test('a failed probe opens the breaker again for another openMs', () => {
    const { breaker, advance, time } = setup({ failures: 1 })
    breaker.failure()
    advance(5_000)
    expect(breaker.acquire()).toBe(true)
    breaker.failure()
    expect(breaker.state).toBe('open')
    expect(breaker.openedAt).toBe(time + 5_000)
    expect(breaker.retryAfterMs()).toBe(5_000)
    advance(5_000)
    expect(breaker.state).toBe('half-open')
  })

  test('a released probe frees the slot without closing or opening', () => {
    const { breaker, advance } = setup({ failures: 1 })
    breaker.failure()
    advance(5_000)
    expect(breaker.acquire()).toBe(true)
    breaker.release()
    expect(breaker.state).toBe('half-open')
    expect(breaker.acquire()).toBe(true)
  })

  test('a probe that never ends frees its slot after openMs', () => {
    const { breaker, advance } = setup({ failures: 1 })
    breaker.failure()
    advance(5_000)
    expect(breaker.acquire()).toBe(true)
    advance(4_999)
    expect(breaker.acquire()).toBe(false)
    advance(1)
    expect(breaker.acquire()).toBe(true)
  })

  test('failures while open change nothing; release while closed changes nothing', () => {
    const { breaker, advance, changes } = setup({ failures: 1 })
    breaker.release()
    breaker.failure()
    advance(2_000)
    breaker.failure()
    expect(breaker.retryAfterMs()).toBe(3_000)
    expect(changes).toHaveLength(1)
  })
})
