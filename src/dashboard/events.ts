import { describeError } from '../errors.js'
import type { BatchState } from '../queue/batches.js'
import type { DashboardStats } from './data.js'
import { createEventStream, type LiveClient } from './event-stream.js'
import { createProgressFollower, type ProgressSource } from './follow.js'

/** What the live view reads. */
export interface LiveSource extends ProgressSource {
  stats(): Promise<DashboardStats>
  batches(): Promise<BatchState[]>
}

export interface LiveHubOptions {
  /** How often every client gets a stats snapshot. */
  statsIntervalMs: number
  /** How often the batch list is read again (and progress subscriptions follow it). */
  batchIntervalMs: number
  headers: Record<string, string>
}

const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
const problemFrame = (what: string, error: unknown) =>
  frame('problem', { message: `could not read ${what}: ${describeError(error)}` })

/**
 * Server-sent events for every open page. One set of timers and one progress subscription per
 * batch serve all clients: stats are read once per interval however many pages are open, and
 * everything stops when the last client disconnects.
 */
export function createLiveHub(source: LiveSource, options: LiveHubOptions) {
  const clients = new Set<LiveClient>()
  const progress = createProgressFollower(source, (message) => broadcast(frame('progress', message)))
  let timers: ReturnType<typeof setInterval>[] = []
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
      return problemFrame('stats', error)
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

  async function refreshBatches(): Promise<void> {
    if (batchesBusy) return
    batchesBusy = true
    try {
      const items = await source.batches()
      if (clients.size === 0) return
      progress.follow(items)
      broadcast(frame('batches', { items }))
    } catch (error) {
      broadcast(problemFrame('batches', error))
    } finally {
      batchesBusy = false
    }
  }

  function start(): void {
    timers = [
      setInterval(() => void tickStats(), options.statsIntervalMs),
      setInterval(() => void refreshBatches(), options.batchIntervalMs),
    ]
    for (const timer of timers) timer.unref?.()
  }

  function stop(): void {
    for (const timer of timers) clearInterval(timer)
    timers = []
    progress.clear()
  }

  /** The first client starts the timers and the batch subscriptions; later ones only read the list. */
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
      client.send(problemFrame('batches', error))
    }
  }

  function open(client: LiveClient, request: Request): void {
    if (closed || request.signal.aborted) {
      client.end()
      return
    }
    request.signal.addEventListener('abort', () => client.end(), { once: true })
    const first = clients.size === 0
    clients.add(client)
    if (first) start()
    void welcome(client, first)
  }

  function ended(client: LiveClient): void {
    if (clients.delete(client) && clients.size === 0) stop()
  }

  return {
    get connections(): number {
      return clients.size
    },

    /** A `text/event-stream` response that lives until the client goes away or the hub closes. */
    connect(request: Request): Response {
      return createEventStream(options.headers, { open: (client) => open(client, request), ended })
    },

    close(): void {
      closed = true
      for (const client of [...clients]) client.end()
      stop()
    },
  }
}

export type LiveHub = ReturnType<typeof createLiveHub>
