// `queue.watchBatch`: a batch's progress as an async iterator, a snapshot first and then live messages.
import type { BatchProgress, BatchState, ProgressSubscription } from './batches.js'

export interface WatchBatchOptions {
  /** Ends the iteration (cleanly, without an error) when aborted. */
  signal?: AbortSignal
}

export interface BatchWatchersOptions {
  /** Listens to a batch's progress messages (the queue's progress listeners). */
  subscribe(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription
  /** The batch as it stands now (`getBatch`, bounded), null when unknown. */
  snapshot(batchId: string): Promise<BatchState | null>
}

/** The progress fields of a `getBatch` state, so that every item has one shape. */
function progressOf(state: BatchState): BatchProgress {
  const { batchId, completed, total, percentage, sent, failed, suppressed, cancelled, done } = state
  return { batchId, completed, total, percentage, sent, failed, suppressed, cancelled, done }
}

const finished = (): IteratorResult<BatchProgress> => ({ done: true, value: undefined })

/**
 * One watch: subscribes first and reads the snapshot once Redis has confirmed the subscription,
 * so that no message falls between the two. Items never go backwards (`completed` only rises) and
 * nothing comes after `done`. Only the newest item waits for a slow consumer: it gets the latest
 * progress, not every message. `end()` finishes the iteration without an error.
 */
function createWatch(batchId: string, options: BatchWatchersOptions, onEnd: () => void) {
  let latest: BatchProgress | undefined
  let failure: unknown
  let completed = -1
  let ended = false
  let sawDone = false
  let waiting: ((result: IteratorResult<BatchProgress>) => void) | undefined
  let waitingFailed: ((error: unknown) => void) | undefined

  function offer(progress: BatchProgress): void {
    if (ended || sawDone) return
    if (!progress.done && progress.completed <= completed) return
    completed = progress.completed
    sawDone = progress.done === true
    latest = progress
    flush()
  }

  /** Hands the newest item (or the end, or a failure) to a pending `next()`. */
  function flush(): void {
    if (!waiting) return
    const resolve = waiting
    const reject = waitingFailed as (error: unknown) => void
    if (failure !== undefined) {
      waiting = waitingFailed = undefined
      const error = failure
      end()
      reject(error)
    } else if (latest) {
      waiting = waitingFailed = undefined
      const value = latest
      latest = undefined
      resolve({ done: false, value })
    } else if (ended || sawDone) {
      // After `done` was handed out the iteration ends, rather than wait for a message that never comes.
      waiting = waitingFailed = undefined
      end()
      resolve(finished())
    }
  }

  const subscription = options.subscribe(batchId, offer)

  function end(): void {
    if (ended) return
    ended = true
    latest = undefined
    subscription()
    onEnd()
    flush()
  }

  subscription.ready
    .then(() => (ended ? null : options.snapshot(batchId)))
    .then(
      // A batch that does not exist yet has no snapshot: its first message comes live.
      (state) => {
        if (state) offer(progressOf(state))
      },
      (error: unknown) => {
        if (ended) return
        failure = error
        flush()
      },
    )

  const iterator: AsyncIterableIterator<BatchProgress> = {
    next() {
      if (waiting) return Promise.reject(new TypeError('watchBatch: next() called before the previous one settled'))
      return new Promise((resolve, reject) => {
        waiting = resolve
        waitingFailed = reject
        flush()
      })
    },
    async return() {
      end()
      return finished()
    },
    [Symbol.asyncIterator]() {
      return iterator
    },
  }
  return { iterator, end }
}

/** The open watches of a queue, ended all at once by `close()`. */
export function createBatchWatchers(options: BatchWatchersOptions) {
  const open = new Set<() => void>()

  return {
    watch(batchId: string, { signal }: WatchBatchOptions = {}): AsyncIterableIterator<BatchProgress> {
      if (signal?.aborted) {
        return (async function* () {})()
      }
      const stopOnAbort = () => watch.end()
      const watch = createWatch(batchId, options, () => {
        open.delete(watch.end)
        signal?.removeEventListener('abort', stopOnAbort)
      })
      open.add(watch.end)
      signal?.addEventListener('abort', stopOnAbort, { once: true })
      return watch.iterator
    },
    /** Ends every watch: their iterations finish. */
    close(): void {
      for (const end of [...open]) end()
    },
    get size(): number {
      return open.size
    },
  }
}
