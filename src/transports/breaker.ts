/** `closed`: sends go through. `open`: none do, until `openMs` have passed. `half-open`: one probe at a time. */
export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Failures within `windowMs` (with no success between them) that open the breaker. */
  failures: number
  /** How far back failures count. */
  windowMs: number
  /** How long the breaker stays open before it lets one probe through. */
  openMs: number
  /** The clock, epoch ms; injected by tests. */
  now?: () => number
  /** Called on every change of state, after it happened. Must not throw (the caller guards it). */
  onChange?: (change: { from: BreakerState; to: BreakerState; at: number }) => void
}

export interface Breaker {
  /** The state now (an open breaker whose time is up reads `half-open`). */
  readonly state: BreakerState
  /** When the breaker last opened (epoch ms), while it is open or half-open. */
  readonly openedAt: number | undefined
  /**
   * Asks to send. Closed: yes. Half-open: yes for one caller at a time (the probe), which must end
   * with `success`, `failure` or `release` (a probe that never ends frees its slot after `openMs`).
   * Open: no.
   */
  acquire(): boolean
  /** A send went through: the failures so far are forgotten, and a probe closes the breaker. */
  success(): void
  /** A send failed in a way that counts against the provider; a failed probe opens the breaker again. */
  failure(): void
  /** A send ended without telling anything about the provider (a refused recipient): a probe slot is freed. */
  release(): void
  /** Time until the breaker lets a probe through: 0 unless it is open. */
  retryAfterMs(): number
}

/**
 * A circuit breaker for one transport, a pure unit: it opens after `failures` failures within
 * `windowMs` with no success between them, stays open `openMs`, then lets one probe through
 * (half-open) whose success closes it and whose failure opens it again.
 */
export function createBreaker(options: BreakerOptions): Breaker {
  const now = options.now ?? Date.now
  let state: BreakerState = 'closed'
  let openedAt: number | undefined
  // When the probe in flight started; a probe that never ended frees its slot after `openMs`.
  let probeStartedAt: number | undefined
  // Times of the failures since the last success, oldest first; at most `failures` of them.
  let failures: number[] = []

  function move(to: BreakerState): void {
    const from = state
    if (from === to) return
    state = to
    options.onChange?.({ from, to, at: now() })
  }

  function open(): void {
    openedAt = now()
    probeStartedAt = undefined
    failures = []
    move('open')
  }

  /** An open breaker whose time is up becomes half-open. */
  function current(): BreakerState {
    if (state === 'open' && openedAt !== undefined && now() - openedAt >= options.openMs) move('half-open')
    return state
  }

  return {
    get state() {
      return current()
    },
    get openedAt() {
      return current() === 'closed' ? undefined : openedAt
    },
    acquire() {
      const at = current()
      if (at === 'closed') return true
      if (at === 'open') return false
      const time = now()
      if (probeStartedAt !== undefined && time - probeStartedAt < options.openMs) return false
      probeStartedAt = time
      return true
    },
    success() {
      failures = []
      if (current() === 'closed') return
      probeStartedAt = undefined
      openedAt = undefined
      move('closed')
    },
    failure() {
      const at = current()
      if (at === 'half-open') return open()
      if (at === 'open') return
      const time = now()
      failures = failures.filter((failedAt) => time - failedAt < options.windowMs)
      failures.push(time)
      if (failures.length >= options.failures) open()
    },
    release() {
      if (current() === 'half-open') probeStartedAt = undefined
    },
    retryAfterMs() {
      if (current() !== 'open' || openedAt === undefined) return 0
      return Math.max(0, openedAt + options.openMs - now())
    },
  }
}
