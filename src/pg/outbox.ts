// Enqueue inside the app's own PostgreSQL transaction: the job is a row until the transaction commits.
import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import type { EmailJobInput } from '../job.js'
import { parseOptions } from '../options.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import type { EmailQueue } from '../queue/types.js'
import { checkTable, DEFAULT_TABLE, migrationSql, statements } from './sql.js'

/** A query's result as `pg` gives it: the rows. */
export interface QueryResultLike {
  rows: unknown[]
}

/**
 * Anything that runs a parameterised statement (`$1, $2...`): a `pg` Client, PoolClient or Pool, or
 * a function for a query builder's transaction (Kysely, Knex; see docs/outbox.md).
 */
export type Queryable =
  | { query(text: string, values?: unknown[]): Promise<QueryResultLike> }
  | ((text: string, values: unknown[]) => Promise<QueryResultLike>)

export interface OutboxOptions {
  /** The queue the relay writes to; jobs are validated against it (and its template renderer). */
  queue: EmailQueue
  /** The outbox table, optionally schema-qualified (`app.mail_outbox`). Default `mailstream_outbox`. */
  table?: string
}

/** A job accepted by the outbox: its job id (fixed now, so the relay can never write it twice) and row. */
export interface OutboxEntry {
  id: string
  outboxId: string
}

export interface Outbox {
  readonly table: string
  /**
   * Validates the job as `queue.enqueue` does and inserts it through `db`, the caller's transaction:
   * it reaches Redis only if that transaction commits, and then once. Bad input rejects with
   * `E_VALIDATION` before anything is written. The insert runs on the caller's connection, under
   * its `statement_timeout`.
   */
  enqueue(db: Queryable, job: EmailJobInput): Promise<OutboxEntry>
  /** `enqueue` for many jobs in one statement; all are validated before any is inserted. */
  enqueueMany(db: Queryable, jobs: readonly EmailJobInput[]): Promise<OutboxEntry[]>
  /** Creates the table and its indexes if they are missing (safe to run at every start). */
  migrate(db: Queryable): Promise<void>
}

const optionsSchema = z.strictObject({
  queue: z.custom<EmailQueue>(isEmailQueue, 'must be a queue made by createEmailQueue'),
  table: z.string().default(DEFAULT_TABLE),
})

/** Rows per INSERT: 3 parameters each, under Postgres's 65 535 parameters per statement. */
const ROWS_PER_INSERT = 1000

/** Runs one statement through anything `Queryable`. */
export function runQuery(db: Queryable, text: string, values: unknown[] = []): Promise<QueryResultLike> {
  return typeof db === 'function' ? db(text, values) : db.query(text, values)
}

function checkDb(db: unknown): asserts db is Queryable {
  const ok =
    typeof db === 'function' ||
    (typeof db === 'object' && db !== null && typeof (db as { query?: unknown }).query === 'function')
  if (!ok) {
    throw new MailstreamError('E_VALIDATION', 'db: must have a query(text, values) method, or be such a function', {
      field: 'db',
    })
  }
}

export function createOutbox(options: OutboxOptions): Outbox {
  const config = parseOptions(optionsSchema, options, 'createOutbox')
  const table = checkTable(config.table)
  const sql = statements(table)
  const inner = queueInternals(config.queue)

  async function enqueueMany(db: Queryable, jobs: readonly EmailJobInput[]): Promise<OutboxEntry[]> {
    checkDb(db)
    if (!Array.isArray(jobs)) throw new MailstreamError('E_VALIDATION', 'jobs: must be an array', { field: 'jobs' })
    const validated = []
    for (const [index, job] of jobs.entries()) {
      try {
        validated.push(await inner.validate(job))
      } catch (error) {
        if (!(error instanceof MailstreamError) || jobs.length === 1) throw error
        throw new MailstreamError('E_VALIDATION', `jobs[${index}]: ${error.message.replace('[mailstream] ', '')}`, {
          field: `${index}.${error.field ?? 'job'}`,
          cause: error,
        })
      }
    }
    const entries: OutboxEntry[] = []
    for (let start = 0; start < validated.length; start += ROWS_PER_INSERT) {
      const chunk = validated.slice(start, start + ROWS_PER_INSERT)
      const values = chunk.flatMap(({ job, payload, dueAt }) => [job.id, payload, dueAt])
      const { rows } = await runQuery(db, sql.insert(chunk.length), values)
      const rowOf = new Map((rows as { id: string; job_id: string }[]).map((row) => [row.job_id, row.id]))
      for (const { job } of chunk) entries.push({ id: job.id, outboxId: rowOf.get(job.id) ?? '' })
    }
    return entries
  }

  return {
    table,
    enqueueMany,
    async enqueue(db, job) {
      const [entry] = await enqueueMany(db, [job])
      return entry as OutboxEntry
    },
    async migrate(db) {
      checkDb(db)
      // One statement per call: a query builder's function may not take several at once.
      for (const statement of migrationSql(table).split(';\n')) if (statement.trim()) await runQuery(db, statement)
    },
  }
}
