// The relay: committed outbox rows -> Redis, each once, by as many relays as run.
import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import { parseOptions } from '../options.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import type { EmailQueue } from '../queue/types.js'
import { createConnections, type PoolLike, pgError } from './connections.js'
import { createRelayPass } from './pass.js'
import { checkTable, DEFAULT_TABLE, statements } from './sql.js'
import { createWakeup } from './wakeup.js'

export interface OutboxRelayOptions {
  queue: EmailQueue
  /** A `pg.Pool` (or anything whose `connect()` gives a client with `query` and `release`). */
  pool: PoolLike
  /** The outbox table. Default `mailstream_outbox`. */
  table?: string
  /** Rows claimed per transaction. Default 100. */
  batchSize?: number
  /** Wake on the table's NOTIFY channel at each commit (one connection held for LISTEN). Default true. */
  listen?: boolean
  /** Longest sleep between two looks at the table (the fallback when a notification is missed). Default 1000. */
  pollIntervalMs?: number
  /** Longest wait for one PostgreSQL statement or for a connection; the connection is then destroyed. Default 5000. */
  queryTimeoutMs?: number
  /** Relayed rows are deleted this long after they were relayed; 0 keeps them. Default 604800 (7 days). */
  retentionSeconds?: number
  /** Called with each error the loop meets (it backs off and goes on). Default: none. */
  onError?: (error: MailstreamError) => void
}

export interface OutboxRelayStats {
  /** Committed rows not yet relayed. */
  waiting: number
  /** Age of the oldest of them, in seconds (0 when none). */
  oldestSeconds: number
  /** Rows that can never be relayed (see `error` in the table), kept for a person to look at. */
  failed: number
  /** Rows this relay moved to Redis since it started. */
  relayed: number
  running: boolean
}

export interface OutboxRelay {
  /** Starts the loop (it runs until `stop()`); resolves at once. */
  start(): void
  /** Stops the loop and returns its connections; waits for the transaction in progress, within its bound. */
  stop(): Promise<void>
  /** One pass: claims up to `batchSize` rows, writes them to Redis, marks them. Resolves with how many. */
  relayOnce(): Promise<number>
  stats(): Promise<OutboxRelayStats>
  /** The backlog in Prometheus text format. */
  metrics(): Promise<string>
}

const optionsSchema = z.strictObject({
  queue: z.custom<EmailQueue>(isEmailQueue, 'must be a queue made by createEmailQueue'),
  pool: z.custom<PoolLike>(
    (value) =>
      typeof value === 'object' && value !== null && typeof (value as { connect?: unknown }).connect === 'function',
    'must be a pg Pool (an object with connect())',
  ),
  table: z.string().default(DEFAULT_TABLE),
  batchSize: z.number().int().min(1).max(5000).default(100),
  listen: z.boolean().default(true),
  pollIntervalMs: z.number().int().min(10).max(3_600_000).default(1000),
  queryTimeoutMs: z.number().int().min(10).max(600_000).default(5000),
  retentionSeconds: z.number().int().min(0).default(604_800),
  onError: z.custom<(error: MailstreamError) => void>((value) => typeof value === 'function').optional(),
})

/** How often relayed rows past their retention are deleted, and how many at a time. */
const PRUNE_EVERY_MS = 60_000
const PRUNE_ROWS = 1000
/** Backoff after a failed pass: doubles from 100 ms up to this. */
const MAX_BACKOFF_MS = 30_000

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const config = parseOptions(optionsSchema, options, 'createOutboxRelay')
  const table = checkTable(config.table)
  const sql = statements(table)
  const connections = createConnections(config.pool, config.queryTimeoutMs)
  const pass = createRelayPass({
    connections,
    sql,
    queue: queueInternals(config.queue),
    batchSize: config.batchSize,
  })
  const report = (error: unknown, what: string): void => {
    try {
      config.onError?.(pgError(error, what))
    } catch {}
  }
  const wakeup = createWakeup({ connections, listen: config.listen ? sql.listen : undefined, report })

  let running = false
  let loop: Promise<void> | undefined
  let lastPrune = 0

  async function prune(): Promise<void> {
    if (config.retentionSeconds === 0 || Date.now() - lastPrune < PRUNE_EVERY_MS) return
    lastPrune = Date.now()
    try {
      await connections.withClient(
        (client) => connections.bound(client.query(sql.prune, [config.retentionSeconds, PRUNE_ROWS]), 'prune'),
        'prune',
      )
    } catch (error) {
      report(error, 'prune')
    }
  }

  async function run(): Promise<void> {
    let failures = 0
    while (running) {
      await wakeup.ensure(() => running)
      let claimed = 0
      try {
        claimed = await pass.relayOnce()
        failures = 0
      } catch (error) {
        failures++
        report(error, 'relay')
        if (error instanceof MailstreamError && error.code === 'E_CLOSED') break
        await wakeup.sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** (failures - 1)))
        continue
      }
      if (claimed >= config.batchSize) continue // more waiting: no sleep
      await prune()
      if (running) await wakeup.sleep(config.pollIntervalMs)
    }
    running = false
  }

  async function stats(): Promise<OutboxRelayStats> {
    const { rows } = await connections.withClient(
      (client) => connections.bound(client.query(sql.backlog), 'stats'),
      'stats',
    )
    const row = rows[0] as { waiting: string; oldest_seconds: number; failed: string }
    return {
      waiting: Number(row.waiting),
      oldestSeconds: Math.round(Number(row.oldest_seconds) * 1000) / 1000,
      failed: Number(row.failed),
      relayed: pass.relayed(),
      running,
    }
  }

  return {
    start() {
      if (running) return
      running = true
      loop = run()
    },
    async stop() {
      running = false
      wakeup.wake()
      await loop
      loop = undefined
      wakeup.close()
    },
    relayOnce: pass.relayOnce,
    stats,
    metrics: async () => renderOutboxMetrics(table, await stats()),
  }
}

/** The backlog in Prometheus text format. */
function renderOutboxMetrics(table: string, stats: OutboxRelayStats): string {
  const label = `{table="${table}"}`
  return [
    '# HELP mailstream_outbox_waiting Committed outbox rows not yet relayed to Redis.',
    '# TYPE mailstream_outbox_waiting gauge',
    `mailstream_outbox_waiting${label} ${stats.waiting}`,
    '# HELP mailstream_outbox_oldest_seconds Age of the oldest row not yet relayed.',
    '# TYPE mailstream_outbox_oldest_seconds gauge',
    `mailstream_outbox_oldest_seconds${label} ${stats.oldestSeconds}`,
    '# HELP mailstream_outbox_failed Rows that can never be relayed.',
    '# TYPE mailstream_outbox_failed gauge',
    `mailstream_outbox_failed${label} ${stats.failed}`,
    '# HELP mailstream_outbox_relayed_total Rows this relay moved to Redis.',
    '# TYPE mailstream_outbox_relayed_total counter',
    `mailstream_outbox_relayed_total${label} ${stats.relayed}`,
    '',
  ].join('\n')
}
