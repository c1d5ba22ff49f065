import { describeError } from '../errors.js'
import type { BatchProgress, BatchState, ProgressSubscription } from '../queue/batches.js'
import type { DashboardStats } from './data.js'

/** What the live view reads. */
export interface LiveSource {
  stats(): Promise<DashboardStats>
  batches(): Promise<BatchState[]>
  getBatch(batchId: string): Promise<BatchState | null>
  onProgress(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription
}

export interface LiveHubOptions {
  /** How often every client gets a stats snapshot. */
  statsIntervalMs: number
  /** How often the batch list is read again (and progress subscriptions follow it). */
  batchIntervalMs: number
  headers: Record<string, string>
}

interface LiveClient {
  send(chunk: string): void
  end(): void
}

/** A client whose stream has this many unread messages queued is dropped (a stalled connection). */
const MAX_BACKLOG = 500
const encoder = new TextEncoder()

const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

/**
 * Server-sent events for every open page. One set of timers and one progress subscription per
 * batch serve all clients: stats are read once per interval however many pages are open, and
 * everything stops when the last client disconnects.
 */
export function createLiveHub(source: LiveSource, options: LiveHubOptions) {
  const clients = new Set<LiveClient>()
  const subscriptions = new Map<string, ProgressSubscription>()
  let statsTimer: ReturnType<typeof setInterval> | undefined
  let batchTimer: ReturnType<typeof setInterval> | undefined
  let statsBusy = false
  let batchesBusy = false
  let closed = false

  function broadcast(chunk: string): void {
    for (const client of [...clients]) client.send(chunk)
  }

  async function readStats(): Promise<string> {
    try {
      return frame('stats', await source.stats())
    } catch (error) {
      return frame('problem', { message: `could not read stats: ${describeError(error)}` })
    }
  }

  async function tickStats(): Promise<void> {
    if (statsBusy) return // Redis is slow: skip a beat rather than pile up reads
    statsBusy = true
    try {
      broadcast(await readStats())
    } finally {
      statsBusy = false
    }
  }

  function unsubscribe(batchId: string): void {
    subscriptions.get(batchId)?.()
    subscriptions.delete(batchId)
  }

  /** Follows the progress of every listed batch that has not finished; drops the others. */
  function follow(items: readonly BatchState[]): void {
    const active = new Set(items.filter((item) => !item.done).map((item) => item.batchId))
    for (const batchId of [...subscriptions.keys()]) if (!active.has(batchId)) unsubscribe(batchId)
    for (const batchId of active) {
      if (subscriptions.has(batchId)) continue
      const off = source.onProgress(batchId, (progress) => {
        broadcast(frame('progress', progress))
        if (progress.done && subscriptions.get(batchId) === off) unsubscribe(batchId)
      })
      subscriptions.set(batchId, off)
      // Whatever moved between reading the list and the subscription going live is read once more.
      off.ready
        .then(async () => {
          if (subscriptions.get(batchId) !== off) return
          const state = await source.getBatch(batchId)
          if (state && subscriptions.get(batchId) === off) broadcast(frame('progress', state))
        })
        .catch(() => {})
    }
  }

  async function refreshBatches(): Promise<void> {
    if (batchesBusy) return
    batchesBusy = true
    try {
      const items = await source.batches()
      if (clients.size === 0) return
      follow(items)
      broadcast(frame('batches', { items }))
    } catch (error) {
      broadcast(frame('problem', { message: `could not read batches: ${describeError(error)}` }))
    } finally {
      batchesBusy = false
    }
  }

  function start(): void {
    statsTimer = setInterval(() => void tickStats(), options.statsIntervalMs)
    batchTimer = setInterval(() => void refreshBatches(), options.batchIntervalMs)
    statsTimer.unref?.()
    batchTimer.unref?.()
  }

  function stop(): void {
    clearInterval(statsTimer)
    clearInterval(batchTimer)
    statsTimer = undefined
    batchTimer = undefined
    for (const batchId of [...subscriptions.keys()]) unsubscribe(batchId)
  }

  function remove(client: LiveClient): void {
    if (!clients.delete(client)) return
    if (clients.size === 0) stop()
  }

  async function welcome(client: LiveClient, first: boolean): Promise<void> {
    client.send('retry: 3000\n\n')
    client.send(await readStats())
    if (first) {
      await refreshBatches()
      return
    }
    try {
      client.send(frame('batches', { items: await source.batches() }))
    } catch (error) {
      client.send(frame('problem', { message: `could not read batches: ${describeError(error)}` }))
    }
  }

  return {
    get connections(): number {
      return clients.size
    },

    /** A `text/event-stream` response that lives until the client goes away or the hub closes. */
    connect(request: Request): Response {
      let client: LiveClient | undefined
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          let ended = false
          const current: LiveClient = {
            send(chunk) {
              if (ended) return
              try {
                controller.enqueue(encoder.encode(chunk))
              } catch {
                current.end()
                return
              }
              if ((controller.desiredSize ?? 0) < -MAX_BACKLOG) current.end()
            },
            end() {
              if (ended) return
              ended = true
              remove(current)
              try {
                controller.close()
              } catch {
                // Already cancelled by the client.
              }
            },
          }
          client = current
          if (closed || request.signal.aborted) {
            current.end()
            return
          }
          request.signal.addEventListener('abort', () => current.end(), { once: true })
          const first = clients.size === 0
          clients.add(current)
          if (first) start()
          void welcome(current, first)
        },
        cancel() {
          client?.end()
        },
      })
      return new Response(stream, { status: 200, headers: options.headers })
    },

    close(): void {
      closed = true
      for (const client of [...clients]) client.end()
      stop()
    },
  }
}
