// The test queue's producer side: the very validation of `enqueue` and `enqueueBatch`
// (validateJob, batch-input.ts), written to the in-memory store as the enqueue script writes Redis.
import { MailstreamError } from '../errors.js'
import { type EmailJob, ID_RE, parseJob, type ValidatedJob, validateJob, validateJobs } from '../job.js'
import { batchTemplate, checkBatchCall, type EnqueueBatchResult, toBatchRecord } from '../queue/batch-input.js'
import type { EmailQueue, EnqueueResult } from '../queue/types.js'
import type { Batches, BatchRecord } from './batches.js'
import { DELAYED, type JobRecord, type JobStore } from './store.js'

export interface ProducerContext {
  store: JobStore
  batches: Batches
  /** Every job written, oldest first. */
  jobs: EmailJob[]
  assertOpen(): void
}

export function checkId(id: unknown, field = 'id'): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new MailstreamError('E_VALIDATION', `${field}: must be 1-128 characters of A-Z a-z 0-9 _ . : -`, { field })
  }
  return id
}

const isThenable = (value: unknown): value is Promise<unknown> =>
  typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function'

/** The status the enqueue script reads: a job being sent is still `queued` in its status hash. */
const storedStatus = (record: JobRecord): EnqueueResult['status'] =>
  record.status === 'active' ? 'queued' : record.status

/** Where a batch stands when `enqueueBatch` begins (batch-state.ts). */
function openBatch(
  store: JobStore,
  batch: BatchRecord,
  sharedJson: string | undefined,
): 'open' | 'cancelled' | 'finished' {
  if (batch.cancelledAt !== undefined) return 'cancelled'
  if (batch.finishedAt !== undefined) return 'finished'
  if (batch.createdAt === undefined && batch.total === 0) {
    batch.createdAt = store.now()
    batch.sharedJson = sharedJson
    batch.shared = sharedJson === undefined ? undefined : JSON.parse(sharedJson)
  } else if (batch.sharedJson !== sharedJson) {
    throw new MailstreamError(
      'E_VALIDATION',
      `data: batch ${batch.batchId} was enqueued with other shared data; cancel it and use a new batchId`,
      { field: 'data' },
    )
  }
  return 'open'
}

/** `enqueueBatch` on the test queue: batch-input.ts turns each recipient into its job, as in Redis. */
function createEnqueueBatch(
  { store, batches, assertOpen }: ProducerContext,
  write: (job: EmailJob, dueAt: number) => EnqueueResult,
): EmailQueue['enqueueBatch'] {
  return async (batchId, recipients, build, options = {}) => {
    assertOpen()
    checkBatchCall(batchId, recipients, build, options)
    if (options.variants !== undefined || options.test !== undefined) {
      throw new MailstreamError(
        'E_VALIDATION',
        'options.variants: the test queue does not run A/B tests; test them on a Redis queue (docs/newsletters.md)',
        { field: 'options.variants' },
      )
    }
    // Due times (sendAt, delayMs, deliverAt) on the test queue's clock.
    const template = batchTemplate(batchId, options, undefined, store.now())
    const result: EnqueueBatchResult = { batchId, total: 0, enqueued: 0, duplicates: 0, invalid: 0, cancelled: false }
    const batch = batches.ensure(batchId)
    const opening = openBatch(store, batch, template.sharedJson)
    if (opening === 'cancelled') return { ...result, cancelled: true }
    if (opening === 'finished') {
      for await (const _ of recipients) result.total++
      result.duplicates = result.total
      return result
    }
    for await (const recipient of recipients) {
      if (batch.cancelledAt !== undefined) {
        result.cancelled = true
        break
      }
      const index = result.total++
      try {
        const raw = build ? build(recipient, index) : recipient
        const built = isThenable(raw) ? await raw : raw
        const record = toBatchRecord(template, built, index)
        const job = parseJob(record.payload) as EmailJob
        job.createdAt = store.now()
        const written = write(job, record.dueAt)
        if (written.status === 'cancelled' && !written.duplicate) result.cancelled = true
        else if (written.duplicate) result.duplicates++
        else result.enqueued++
      } catch (error) {
        if (!template.skipInvalid || !(error instanceof MailstreamError) || error.code !== 'E_VALIDATION') throw error
        result.invalid++
      }
      if (result.cancelled) break
    }
    if (!result.cancelled) batches.seal(batch)
    return result
  }
}

export function createProducer(context: ProducerContext) {
  const { store, batches, jobs, assertOpen } = context

  /** One job as the enqueue script writes it: new, a duplicate by idempotency key or id, or refused. */
  function write(job: EmailJob, dueAt: number): EnqueueResult {
    if (job.idempotencyKey !== undefined) {
      const existing = store.idempotent(job.idempotencyKey)
      if (existing !== undefined) {
        const record = store.get(existing)
        return { id: existing, status: record ? storedStatus(record) : 'unknown', duplicate: true }
      }
    }
    const current = store.get(job.id)
    if (current) return { id: job.id, status: storedStatus(current), duplicate: true }
    if (job.batchId !== undefined && batches.get(job.batchId)?.cancelledAt !== undefined) {
      return { id: job.id, status: 'cancelled', duplicate: false }
    }
    const record = store.insert(job, dueAt)
    if (job.batchId !== undefined) batches.ensure(job.batchId).total++
    jobs.push(job)
    return { id: job.id, status: record.status as EnqueueResult['status'], duplicate: false }
  }

  const writeValidated = ({ job, dueAt }: ValidatedJob) => write(job, dueAt)

  function cancelRecord(record: JobRecord | undefined): boolean {
    if (!record || (record.status !== 'queued' && !DELAYED.has(record.status))) return false
    store.finish(record, 'cancelled')
    if (record.job.batchId !== undefined) batches.count(record.job.batchId, 'cancelled')
    return true
  }

  return {
    async enqueue(input) {
      assertOpen()
      return writeValidated(validateJob(input, store.now()))
    },

    async enqueueMany(inputs) {
      assertOpen()
      const validated = validateJobs(inputs, store.now())
      return validated.map(writeValidated)
    },

    enqueueBatch: createEnqueueBatch(context, write),

    async cancel(id) {
      assertOpen()
      return cancelRecord(store.get(checkId(id)))
    },

    async cancelBatch(batchId) {
      assertOpen()
      const batch = batches.get(checkId(batchId, 'batchId'))
      if (!batch) return 0
      batch.cancelledAt ??= store.now()
      let cancelled = 0
      for (const record of store.all()) {
        if (record.job.batchId === batchId && cancelRecord(record)) cancelled++
      }
      batches.seal(batch)
      return cancelled
    },
  } satisfies Pick<EmailQueue, 'enqueue' | 'enqueueMany' | 'enqueueBatch' | 'cancel' | 'cancelBatch'>
}
