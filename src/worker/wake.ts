/** A wait that can be ended early from outside, for waking loops. */
export function wakeable() {
  let resolveWait: (() => void) | undefined
  return {
    wait(ms: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms)
        function done() {
          clearTimeout(timer)
          resolveWait = undefined
          resolve()
        }
        resolveWait = done
      })
    },
    wake(): void {
      resolveWait?.()
    },
  }
}

/** The wait after the n-th failure in a row of a loop: 100 ms doubling, at most 5 s. */
export const failureBackoffMs = (failures: number): number => Math.min(5000, 100 * 2 ** Math.min(failures, 6))

/**
 * A background loop of the worker: runs `pass` until `running()` is false, sleeping (wakeably)
 * the ms it returns, or a growing backoff after a failure, which goes to `onError` with `what`.
 */
export async function runLoop(
  options: {
    running(): boolean
    onError(error: unknown, what: string, failures: number): void
  },
  wake: ReturnType<typeof wakeable>,
  what: string,
  pass: () => Promise<number>,
): Promise<void> {
  let failures = 0
  while (options.running()) {
    let wait: number
    try {
      wait = await pass()
      failures = 0
    } catch (error) {
      if (!options.running()) break
      failures++
      options.onError(error, what, failures)
      wait = failureBackoffMs(failures)
    }
    if (options.running()) await wake.wait(wait)
  }
}
