import type { EmailWorker, SesEvent } from 'mailstream'
import type pg from 'pg'

export interface EmailLogEntry {
  source: 'worker' | 'ses'
  event: string
  jobId?: string | undefined
  batchId?: string | undefined
  recipients?: string[]
  messageId?: string | undefined
  detail?: string | undefined
}

const COLUMNS = ['source', 'event', 'job_id', 'batch_id', 'recipients', 'message_id', 'detail']
const row = (entry: EmailLogEntry) => [
  entry.source,
  entry.event,
  entry.jobId ?? null,
  entry.batchId ?? null,
  entry.recipients ?? [],
  entry.messageId ?? null,
  entry.detail ?? null,
]

/**
 * The EmailLog table, fed by the worker's events and the SES webhook. Worker events are
 * synchronous callbacks: their rows are queued and written in the background, up to 500 in one
 * INSERT, so that a newsletter to many subscribers costs a few queries, not one per email;
 * `flush()` waits for them (at shutdown, before the pool closes).
 */
export function createEmailLog(pool: pg.Pool, log: (line: string) => void) {
  const queued: EmailLogEntry[] = []
  let writing: Promise<void> | undefined

  async function insert(...entries: EmailLogEntry[]): Promise<void> {
    const values = entries.map((_, i) => `(${COLUMNS.map((__, c) => `$${i * COLUMNS.length + c + 1}`).join(', ')})`)
    await pool.query(`INSERT INTO email_log (${COLUMNS.join(', ')}) VALUES ${values.join(', ')}`, entries.flatMap(row))
  }

  async function writeQueued(): Promise<void> {
    // The next turn of the event loop: the events of one batch of sends share the first INSERT.
    await new Promise((resolve) => setImmediate(resolve))
    while (queued.length > 0) {
      const rows = queued.splice(0, 500)
      await insert(...rows).catch((error: Error) => log(`email log: ${rows.length} rows lost: ${error.message}`))
    }
    writing = undefined
  }

  function record(entry: EmailLogEntry): void {
    queued.push(entry)
    writing ??= writeQueued()
  }

  const addresses = (job: { to: { address: string }[] } | null) => job?.to.map((to) => to.address.toLowerCase()) ?? []

  return {
    insert,

    /**
     * Records every outcome of the worker. A failed attempt shows as `failed` followed by
     * `retrying` (or by `dead` when it was the last one). Returns the function that stops it.
     */
    attach(worker: EmailWorker): () => void {
      const offs = [
        worker.on('sent', ({ id, job, messageId, attempts, rejected }) =>
          record({
            source: 'worker',
            event: 'sent',
            jobId: id,
            batchId: job.batchId,
            recipients: addresses(job),
            messageId,
            detail: rejected?.length ? `attempt ${attempts}; rejected ${rejected.join(', ')}` : `attempt ${attempts}`,
          }),
        ),
        worker.on('retrying', ({ id, job, attempts, error, retryAt, throttled }) =>
          record({
            source: 'worker',
            event: 'retrying',
            jobId: id,
            batchId: job.batchId,
            recipients: addresses(job),
            detail: `${throttled ? 'throttled' : `attempt ${attempts}`}: ${error}; next at ${new Date(retryAt).toISOString()}`,
          }),
        ),
        worker.on('failed', ({ id, job, attempts, error, retry }) =>
          record({
            source: 'worker',
            event: 'failed',
            jobId: id,
            batchId: job?.batchId,
            recipients: addresses(job),
            detail: `attempt ${attempts} (${retry}): ${error.message}`,
          }),
        ),
        worker.on('dead', ({ id, job, attempts, error }) =>
          record({
            source: 'worker',
            event: 'dead',
            jobId: id,
            batchId: job?.batchId,
            recipients: addresses(job),
            detail: `after ${attempts} attempts: ${error}`,
          }),
        ),
        worker.on('suppressed', ({ id, job, addresses: suppressed }) =>
          record({ source: 'worker', event: 'suppressed', jobId: id, batchId: job.batchId, recipients: suppressed }),
        ),
      ]
      return () => {
        for (const off of offs) off()
      }
    },

    /**
     * The webhook's `onEvent`: awaited, so that a failed insert answers SNS with an error and SNS
     * delivers the notification again (the handler does not count it twice).
     */
    recordSesEvent(event: SesEvent): Promise<void> {
      const detail =
        event.type === 'bounce'
          ? `${event.bounceType ?? ''} ${event.bounceSubType ?? ''}`.trim()
          : event.type === 'click'
            ? event.link
            : undefined
      return insert({
        source: 'ses',
        event: event.type,
        jobId: event.jobId,
        batchId: event.batchId,
        recipients: event.recipients,
        messageId: event.messageId,
        detail,
      })
    },

    /** Waits for the rows still being written. */
    async flush(): Promise<void> {
      while (writing) await writing
    },
  }
}
