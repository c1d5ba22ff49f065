// The relay: committed outbox rows -> Redis, each once, by as many relays as run.
import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import type { EmailJob, ValidatedJob } from '../job.js'
import { parseOptions } from '../options.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import type { EmailQueue } from '../queue/types.js'
import type { QueryResultLike } from './outbox.js'
import { checkTable, DEFAULT_TABLE, statements } from './sql.js'

/** A connection taken from a pool (`pg.PoolClient`): released, or destroyed with an error. */
export interface PoolClientLike {
  query(text: string, values?: unknown[]): Promise<QueryResultLike>
  release(error?: Error | boolean): void
  on?(event: 'notification' | 'error', listener: (...args: unknown[]) => void): unknown
  removeListener?(event: 'notification' | 'error', listener: (...args: unknown[]) => void): unknown
}

/** Where the relay takes its connections: a `pg.Pool`. */
export interface PoolLike {
  connect(): Promise<PoolClientLike>
}

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

interface Row {
  id: string
  job_id: string
  payload: string
  due_at: string
}

function pgError(error: unknown, what: string): MailstreamError {
  if (error instanceof MailstreamError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new MailstreamError('E_DATABASE', `outbox relay: ${what}: ${message}`, { cause: error })
}

/** A row as the queue's writer takes it; `undefined` when the stored payload is not a job. */
function toValidated(row: Row): ValidatedJob | undefined {
  try {
    const job = JSON.parse(row.payload) as EmailJob
    if (typeof job !== 'object' || job === null || job.id !== row.job_id) return undefined
    return { job, payload: row.payload, dueAt: Number(row.due_at) }
  } catch {
    return undefined
  }
}

export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const config = parseOptions(optionsSchema, options, 'createOutboxRelay')
  const table = checkTable(config.table)
  const sql = statements(table)
  const inner = queueInternals(config.queue)
  const timeoutMs = config.queryTimeoutMs

  let running = false
  let relayed = 0
  let loop: Promise<void> | undefined
  let wake: (() => void) | undefined
  let notified = false
  let listener: PoolClientLike | undefined
  let lastPrune = 0

  function report(error: unknown, what: string): void {
    try {
      config.onError?.(pgError(error, what))
    } catch {}
  }

  /** Within `timeoutMs`, or rejects; the caller then destroys the connection, which ends its transaction. */
  function bound<T>(promise: Promise<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new MailstreamError('E_TIMEOUT', `outbox relay: ${what}: no answer within ${timeoutMs} ms`)),
        timeoutMs,
      )
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

  /** A connection for one transaction; a late one (after its bound) is released, not leaked. */
  async function connect(): Promise<PoolClientLike> {
    const pending = config.pool.connect()
    try {
      return await bound(pending, 'connect')
    } catch (error) {
      pending.then(
        (late) => late.release(),
        () => {},
      )
      throw error
    }
  }

  /** Writes the rows to Redis; the ones that can never go are marked failed instead. */
  async function write(client: PoolClientLike, rows: Row[]): Promise<string[]> {
    const good: { row: Row; job: ValidatedJob }[] = []
    for (const row of rows) {
      const job = toValidated(row)
      if (job) good.push({ row, job })
      else await bound(client.query(sql.failed, [row.id, 'the payload is not a job']), 'mark failed')
    }
    try {
      await inner.write(good.map((one) => one.job))
      return good.map((one) => one.row.id)
    } catch (error) {
      if (!(error instanceof MailstreamError) || error.code !== 'E_IDEMPOTENCY_CONFLICT') throw error
    }
    // A conflict (strict idempotency) refuses its job alone: find it, row by row (the others are
    // now duplicates of themselves, which the job id makes harmless).
    const ok: string[] = []
    for (const { row, job } of good) {
      try {
        await inner.write([job])
        ok.push(row.id)
      } catch (error) {
        if (!(error instanceof MailstreamError) || error.code !== 'E_IDEMPOTENCY_CONFLICT') throw error
        await bound(client.query(sql.failed, [row.id, error.message]), 'mark failed')
      }
    }
    return ok
  }

  async function relayOnce(): Promise<number> {
    const client = await connect()
    let broken: Error | undefined
    try {
      // No wait for the disk at COMMIT: a mark lost in a server crash only makes a row relayed
      // again, which the job id makes a duplicate. One round trip for both statements.
      await bound(client.query('BEGIN; SET LOCAL synchronous_commit TO off'), 'BEGIN')
      const { rows } = await bound(client.query(sql.claim, [config.batchSize]), 'claim')
      // Written to Redis with their own job ids: if this process dies before COMMIT, the rows are
      // claimed again and the queue answers "duplicate" for the ones already written.
      const done = rows.length ? await write(client, rows as Row[]) : []
      if (done.length) await bound(client.query(sql.relayed, [done]), 'mark relayed')
      await bound(client.query('COMMIT'), 'COMMIT')
      relayed += done.length
      return rows.length
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error))
      throw pgError(error, 'relay')
    } finally {
      // A failed transaction's connection is destroyed, not rolled back: that ends the
      // transaction (and its row locks) even when the server stopped answering.
      client.release(broken)
    }
  }

  async function prune(): Promise<void> {
    if (config.retentionSeconds === 0 || Date.now() - lastPrune < PRUNE_EVERY_MS) return
    lastPrune = Date.now()
    const client = await connect()
    let broken: Error | undefined
    try {
      await bound(client.query(sql.prune, [config.retentionSeconds, PRUNE_ROWS]), 'prune')
    } catch (error) {
      broken = error as Error
      report(error, 'prune')
    } finally {
      client.release(broken)
    }
  }

  const onNotification = () => {
    notified = true
    wake?.()
  }
  const onListenerError = (error: unknown) => {
    report(error, 'LISTEN connection')
    dropListener(error as Error)
  }

  function dropListener(error?: Error): void {
    const held = listener
    listener = undefined
    if (!held) return
    held.removeListener?.('notification', onNotification)
    held.removeListener?.('error', onListenerError)
    held.release(error ?? true)
  }

  /** Holds one connection on LISTEN; failures are reported and tried again at the next pass. */
  async function ensureListener(): Promise<void> {
    if (!config.listen || listener || !running) return
    let client: PoolClientLike | undefined
    try {
      client = await connect()
      client.on?.('notification', onNotification)
      client.on?.('error', onListenerError)
      listener = client
      await bound(client.query(sql.listen), 'LISTEN')
      if (!running) dropListener()
    } catch (error) {
      report(error, 'LISTEN')
      if (listener === client) dropListener(error as Error)
    }
  }

  /** Sleeps until a notification, the poll interval, or `stop()`. */
  function sleep(ms: number): Promise<void> {
    if (notified || !running) {
      notified = false
      return Promise.resolve()
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        wake = undefined
        notified = false
        resolve()
      }
      wake = done
    })
  }

  async function run(): Promise<void> {
    let failures = 0
    while (running) {
      await ensureListener()
      let claimed = 0
      try {
        claimed = await relayOnce()
        failures = 0
      } catch (error) {
        failures++
        report(error, 'relay')
        if (error instanceof MailstreamError && error.code === 'E_CLOSED') break
        await sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** (failures - 1)))
        continue
      }
      if (claimed >= config.batchSize) continue // more waiting: no sleep
      await prune()
      await sleep(config.pollIntervalMs)
    }
    running = false
  }

  return {
    start() {
      if (running) return
      running = true
      loop = run()
    },

    async stop() {
      running = false
      wake?.()
      await loop
      loop = undefined
      dropListener()
    },

    relayOnce,

    stats,
    metrics,
  }

  async function stats(): Promise<OutboxRelayStats> {
    const client = await connect()
    let broken: Error | undefined
    try {
      const { rows } = await bound(client.query(sql.backlog), 'stats')
      const row = rows[0] as { waiting: string; oldest_seconds: number; failed: string }
      return {
        waiting: Number(row.waiting),
        oldestSeconds: Math.round(Number(row.oldest_seconds) * 1000) / 1000,
        failed: Number(row.failed),
        relayed,
        running,
      }
    } catch (error) {
      broken = error as Error
      throw pgError(error, 'stats')
    } finally {
      client.release(broken)
    }
  }

  async function metrics(): Promise<string> {
    const now = await stats()
    return [
      '# HELP mailstream_outbox_waiting Committed outbox rows not yet relayed to Redis.',
      '# TYPE mailstream_outbox_waiting gauge',
      `mailstream_outbox_waiting{table="${table}"} ${now.waiting}`,
      '# HELP mailstream_outbox_oldest_seconds Age of the oldest row not yet relayed.',
      '# TYPE mailstream_outbox_oldest_seconds gauge',
      `mailstream_outbox_oldest_seconds{table="${table}"} ${now.oldestSeconds}`,
      '# HELP mailstream_outbox_failed Rows that can never be relayed.',
      '# TYPE mailstream_outbox_failed gauge',
      `mailstream_outbox_failed{table="${table}"} ${now.failed}`,
      '# HELP mailstream_outbox_relayed_total Rows this relay moved to Redis.',
      '# TYPE mailstream_outbox_relayed_total counter',
      `mailstream_outbox_relayed_total{table="${table}"} ${now.relayed}`,
      '',
    ].join('\n')
  }
}
