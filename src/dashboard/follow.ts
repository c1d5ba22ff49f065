import type { BatchProgress, BatchState, ProgressSubscription } from '../queue/batches.js'

export interface ProgressSource {
  getBatch(batchId: string): Promise<BatchState | null>
  onProgress(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription
}

/**
 * One progress subscription per batch that is still sending, whatever the number of pages: the
 * live hub hands it each fresh batch list, and it passes every progress message to `publish`.
 */
export function createProgressFollower(
  source: ProgressSource,
  publish: (progress: BatchProgress | BatchState) => void,
) {
  const subscriptions = new Map<string, ProgressSubscription>()

  function unsubscribe(batchId: string): void {
    subscriptions.get(batchId)?.()
    subscriptions.delete(batchId)
  }

  function subscribe(batchId: string): void {
    const off = source.onProgress(batchId, (progress) => {
      publish(progress)
      if (progress.done && subscriptions.get(batchId) === off) unsubscribe(batchId)
    })
    subscriptions.set(batchId, off)
    // Whatever moved between reading the list and the subscription going live is read once more.
    off.ready
      .then(async () => {
        if (subscriptions.get(batchId) !== off) return
        const state = await source.getBatch(batchId)
        if (state && subscriptions.get(batchId) === off) publish(state)
      })
      .catch(() => {})
  }

  return {
    /** Follows the progress of every listed batch that has not finished; drops the others. */
    follow(items: readonly BatchState[]): void {
      const active = new Set(items.filter((item) => !item.done).map((item) => item.batchId))
      for (const batchId of [...subscriptions.keys()]) if (!active.has(batchId)) unsubscribe(batchId)
      for (const batchId of active) if (!subscriptions.has(batchId)) subscribe(batchId)
    },

    /** Ends every subscription. */
    clear(): void {
      for (const batchId of [...subscriptions.keys()]) unsubscribe(batchId)
    },
  }
}
