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
