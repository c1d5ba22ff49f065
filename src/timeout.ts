/**
 * `promise`, or a rejection with `late()` once `ms` have passed first: the one bound every call to
 * Redis, PostgreSQL or an app's store goes through. The promise itself is not cancelled.
 */
export function withTimeout<T>(promise: PromiseLike<T>, ms: number, late: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(late()), ms)
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      },
    )
  })
}
