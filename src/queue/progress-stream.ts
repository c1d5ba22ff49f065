// A batch's progress as server-sent events, for any framework that can send a web ReadableStream.
import { describeError, isMailstreamError } from '../errors.js'
import type { BatchProgress } from './batches.js'
import type { WatchBatchOptions } from './watch.js'

/** The headers of a `text/event-stream` reply that proxies pass through unbuffered. */
export const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
})

export interface BatchProgressStreamOptions extends WatchBatchOptions {
  /** A comment line this often keeps proxies from closing a quiet stream. 0 for none. Default 15 000. */
  keepAliveMs?: number
  /** Sent as `retry:`, the reconnection delay a browser's EventSource uses. Default 5000. */
  retryMs?: number
  /** Called once when the stream ends: after `done`, when the client leaves, on abort or queue close. */
  onClose?: () => void
}

export interface BatchProgressStream {
  /** `content-type: text/event-stream`, `cache-control: no-cache`, `x-accel-buffering: no`. */
  headers: Record<string, string>
  /** UTF-8 server-sent events: `progress` for each update, `done` last, `error` if watching failed. */
  body: ReadableStream<Uint8Array>
}

/** What `batchProgressStream` needs of a queue. */
export interface WatchesBatches {
  watchBatch(batchId: string, options?: WatchBatchOptions): AsyncIterableIterator<BatchProgress>
}

const encoder = new TextEncoder()

/** One server-sent event; `data` is JSON on a single line. */
export function formatEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/**
 * A batch's progress as server-sent events: the current state first, then each update, and the
 * stream ends after the `done` event (a browser's EventSource reconnects when a stream ends, so
 * close it on `done`). Built on `queue.watchBatch`; the stream is pulled, so a slow client gets
 * the latest progress rather than a backlog. Cancelling the body (the client left) ends the watch.
 *
 * Express: `res.writeHead(200, headers); Readable.fromWeb(body).pipe(res)`.
 * Hono, or any fetch handler: `new Response(body, { headers })`.
 */
export function batchProgressStream(
  queue: WatchesBatches,
  batchId: string,
  options: BatchProgressStreamOptions = {},
): BatchProgressStream {
  const { keepAliveMs = 15_000, retryMs = 5000, onClose, signal } = options
  // Validates batchId now, so that a bad id throws here rather than inside the stream.
  const progress = queue.watchBatch(batchId, signal ? { signal } : {})
  let keepAlive: ReturnType<typeof setInterval> | undefined
  let closed = false

  function close(): void {
    if (closed) return
    closed = true
    clearInterval(keepAlive)
    void progress.return?.()
    onClose?.()
  }

  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(`retry: ${retryMs}\n\n`))
      if (keepAliveMs > 0) {
        keepAlive = setInterval(() => controller.enqueue(encoder.encode(': keep-alive\n\n')), keepAliveMs)
        keepAlive.unref?.()
      }
    },
    async pull(controller) {
      let next: IteratorResult<BatchProgress>
      try {
        next = await progress.next()
      } catch (error) {
        if (closed) return
        const code = isMailstreamError(error) ? error.code : 'E_REDIS'
        controller.enqueue(encoder.encode(formatEvent('error', { code, message: describeError(error) })))
        close()
        controller.close()
        return
      }
      if (closed) return // the client left meanwhile: the stream is cancelled already
      if (!next.done) controller.enqueue(encoder.encode(formatEvent(next.value.done ? 'done' : 'progress', next.value)))
      if (next.done || next.value.done) {
        close()
        controller.close()
      }
    },
    cancel() {
      close()
    },
  })
  return { headers: { ...EVENT_STREAM_HEADERS }, body }
}
