// One pass of the relay: claim committed rows, write them to Redis, mark them, in one transaction.
import { MailstreamError } from '../errors.js'
import type { EmailJob, ValidatedJob } from '../job.js'
import type { QueueInternals } from '../queue/internals.js'
import type { Connections, PoolClientLike } from './connections.js'
import type { statements } from './sql.js'

interface Row {
  id: string
  job_id: string
  payload: string
  due_at: string
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

const isConflict = (error: unknown) => error instanceof MailstreamError && error.code === 'E_IDEMPOTENCY_CONFLICT'

export function createRelayPass(options: {
  connections: Connections
  sql: ReturnType<typeof statements>
  queue: Pick<QueueInternals, 'write'>
  batchSize: number
}) {
  const { connections, sql, queue, batchSize } = options
  const { bound } = connections
  let relayed = 0

  const markFailed = (client: PoolClientLike, id: string, reason: string) =>
    bound(client.query(sql.failed, [id, reason]), 'mark failed')

  /** Writes the rows to Redis and resolves the ids written; the ones that can never go are marked failed. */
  async function write(client: PoolClientLike, rows: Row[]): Promise<string[]> {
    const good: { row: Row; job: ValidatedJob }[] = []
    for (const row of rows) {
      const job = toValidated(row)
      if (job) good.push({ row, job })
      else await markFailed(client, row.id, 'the payload is not a job')
    }
    try {
      await queue.write(good.map((one) => one.job))
      return good.map((one) => one.row.id)
    } catch (error) {
      if (!isConflict(error)) throw error
    }
    // A conflict (strict idempotency) refuses its job alone: find it, row by row (the others are
    // now duplicates of themselves, which the job id makes harmless).
    const ok: string[] = []
    for (const { row, job } of good) {
      try {
        await queue.write([job])
        ok.push(row.id)
      } catch (error) {
        if (!isConflict(error)) throw error
        await markFailed(client, row.id, (error as Error).message)
      }
    }
    return ok
  }

  return {
    /** Rows this pass unit moved to Redis since it was made. */
    relayed: () => relayed,

    /** Claims up to `batchSize` rows, writes them, marks them; resolves how many it claimed. */
    relayOnce(): Promise<number> {
      return connections.withClient(async (client) => {
        // No wait for the disk at COMMIT: a mark lost in a server crash only makes a row relayed
        // again, which the job id makes a duplicate. One round trip for both statements.
        await bound(client.query('BEGIN; SET LOCAL synchronous_commit TO off'), 'BEGIN')
        const { rows } = await bound(client.query(sql.claim, [batchSize]), 'claim')
        // Written to Redis with their own job ids: if this process dies before COMMIT, the rows are
        // claimed again and the queue answers "duplicate" for the ones already written.
        const done = rows.length ? await write(client, rows as Row[]) : []
        if (done.length) await bound(client.query(sql.relayed, [done]), 'mark relayed')
        await bound(client.query('COMMIT'), 'COMMIT')
        relayed += done.length
        return rows.length
      }, 'relay')
    },
  }
}
