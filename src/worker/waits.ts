/** How a charge ends without a send. */
export type ChargeStop =
  /** No room soon enough (daily quota, or a long wait): re-delay the job by `retryAfterMs`, no attempt used. */
  | { kind: 'delay'; retryAfterMs: number; reason: string }
  /**
   * A mailbox provider is out of budget: its units are reserved for a slot `retryAfterMs` from now,
   * and the job waits for it in the delayed set (no attempt used, not a throttle) while other jobs go.
   */
  | { kind: 'park'; retryAfterMs: number; reason: string; slot: number }
  | { kind: 'abandoned' }

export interface WaitHooks {
  /** True once the worker has given up on its in-flight work (a hard stop). */
  abandoned(): boolean
  onError(error: unknown, what: string): void
}

/**
 * The waits of the worker's pacing: sleeps that a hard stop can cut short, and Redis calls retried
 * through outages.
 */
export function createWaits(hooks: WaitHooks) {
  const sleepers = new Set<() => void>()

  function sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        sleepers.delete(done)
        resolve()
      }
      sleepers.add(done)
    })
  }

  return {
    sleep,

    /** Retries a Redis call through outages; undefined when the worker gave up meanwhile. */
    async retrying<T>(what: string, call: () => Promise<T>): Promise<T | undefined> {
      for (let failures = 0; ; failures++) {
        try {
          return await call()
        } catch (error) {
          if (failures === 0) hooks.onError(error, what) // the first failure of a run, not every retry
          await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)))
          if (hooks.abandoned()) return undefined
        }
      }
    },

    /** Wakes every sleep now (the worker is stopping hard). */
    interrupt(): void {
      for (const wake of [...sleepers]) wake()
    },
  }
}

export type Waits = ReturnType<typeof createWaits>
