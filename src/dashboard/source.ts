import { ID_RE } from '../job.js'
import type { BatchState } from '../queue/batches.js'
import type { EmailQueue } from '../queue/index.js'
import { queueInternals } from '../queue/internals.js'
import type { SequenceStats, Sequences } from '../sequences/types.js'
import type { FailoverTransport } from '../transports/failover.js'
import {
  createThroughputMeter,
  type DashboardStats,
  type DeadLetterSummary,
  discoverBatches,
  listRetrying,
  readProviderPacing,
  summariseDeadLetter,
} from './data.js'
import type { LiveSource } from './events.js'

/** The discovered batch list is read again at most this often (SCAN is not free). */
const DISCOVERY_TTL_MS = 15_000
/** Keys SCAN may examine per discovery, over all nodes. */
const DISCOVERY_MAX_KEYS = 200_000

export interface SourceOptions {
  batches?: readonly string[] | (() => readonly string[] | Promise<readonly string[]>)
  recentBatches: number
  sequences?: DashboardSequences | undefined
  transports?: readonly Pick<FailoverTransport, 'name' | 'stats'>[] | undefined
}

/** The dashboard's `sequences` option. */
export interface DashboardSequences {
  /** What `createSequences` returned; only its `stats(id)` is called. */
  runner: Pick<Sequences, 'stats'>
  /** The ids of the sequences to show (those given to `createSequences`), 1-50. */
  ids: readonly string[]
}

/** `GET api/sequences`: one per id, its stats, or the error that reading them gave. */
export type SequencePanel = { id: string } & ({ stats: SequenceStats } | { error: string })

/** Everything the dashboard reads from its queue: what the API answers and what the live view sends. */
export function createDashboardSource(queue: EmailQueue, options: SourceOptions) {
  const { redis, keys } = queueInternals(queue)
  const throughput = createThroughputMeter()
  let discovery: { at: number; ids: Promise<string[]> } | undefined

  async function stats(): Promise<DashboardStats> {
    const read = await queue.stats()
    const at = Date.now()
    const streams = Object.values(read.streams)
    return {
      ...read,
      at,
      waiting: streams.reduce((sum, stream) => sum + stream.waiting, 0),
      inFlight: streams.reduce((sum, stream) => sum + stream.pending, 0),
      throughput: throughput(at, read.totals),
      ...(options.transports && {
        failover: options.transports.map((transport) => ({ name: transport.name, transports: transport.stats() })),
      }),
    }
  }

  function discover(): Promise<string[]> {
    const now = Date.now()
    if (!discovery || now - discovery.at > DISCOVERY_TTL_MS) {
      const ids = discoverBatches(redis, keys, options.recentBatches, DISCOVERY_MAX_KEYS)
      discovery = { at: now, ids }
      ids.catch(() => {
        if (discovery?.ids === ids) discovery = undefined
      })
    }
    return discovery.ids
  }

  async function batchIds(): Promise<string[]> {
    const source = options.batches
    if (Array.isArray(source)) return [...source]
    if (typeof source === 'function') {
      const ids = await source()
      return [...new Set([...ids].filter((id) => typeof id === 'string' && ID_RE.test(id)))].slice(0, 100)
    }
    if (options.recentBatches === 0) return []
    return discover()
  }

  async function batches(): Promise<BatchState[]> {
    const ids = await batchIds()
    const states = await Promise.all(ids.map((id) => queue.getBatch(id)))
    return states.filter((state): state is BatchState => state !== null)
  }

  async function deadLetters(count: number): Promise<{ total: number; items: DeadLetterSummary[] }> {
    const [letters, total] = await Promise.all([queue.deadLetters.list({ count }), redis.xlen(keys.dead)])
    return { total, items: letters.map(summariseDeadLetter) }
  }

  async function sequences(): Promise<SequencePanel[]> {
    const option = options.sequences
    if (!option) return []
    return Promise.all(
      option.ids.map(async (id): Promise<SequencePanel> => {
        try {
          return { id, stats: await option.runner.stats(id) }
        } catch (error) {
          return { id, error: error instanceof Error ? error.message : String(error) }
        }
      }),
    )
  }

  const source = {
    stats,
    sequences,
    providers: () => readProviderPacing(redis, keys),
    batches,
    deadLetters,
    failures: (count: number) => listRetrying(redis, keys, count),
    getBatch: (batchId) => queue.getBatch(batchId),
    batchStats: (batchId: string) => queue.batchStats(batchId),
    onProgress: (batchId, listener) => queue.onProgress(batchId, listener),
    retry: (id: string) => queue.deadLetters.retry(id),
    retryAll: () => queue.deadLetters.retry({ all: true }),
    purge: () => queue.deadLetters.purge(),
    decideAbTest: (batchId: string) => queue.decideAbTest(batchId),
  } satisfies LiveSource & Record<string, unknown>
  return source
}

export type DashboardSource = ReturnType<typeof createDashboardSource>
