// Strict idempotency: an idempotency key reused with another job is refused instead of answered with the first job.
import { createHash } from 'node:crypto'
import { type ErrorCode, MailstreamError } from '../errors.js'
import { type EmailJob, recipientList, type ValidatedJob, validateJob } from '../job.js'
import { type EnqueueRecord, type EnqueueReply, enqueue } from '../lua/enqueue.js'
import type { RedisClient } from '../redis.js'
import { type JobStatusName, STATUS } from '../status.js'
import type { EmailQueue, EnqueueResult, QueueContext } from './types.js'

/** Listed in `ErrorCode` by errors.ts; named here until it is. */
const CONFLICT = 'E_IDEMPOTENCY_CONFLICT' as string as ErrorCode

/** Jobs per pipeline, as for the other enqueue. */
const JOBS_PER_PIPELINE = 5000

/** JSON with object keys sorted, so that `{ a, b }` and `{ b, a }` give the same text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * A job's fingerprint: SHA-256 (base64url, 22 characters) of its content as validated, without
 * what differs between two tries of the same request: its id (made up when none is given), when
 * it was enqueued, and the idempotency key itself. When it is due (`delayMs`, `sendAt`) is left
 * out too: `delayMs` counts from each try.
 */
export function jobFingerprint(job: EmailJob): string {
  const { id: _id, createdAt: _createdAt, idempotencyKey: _key, ...content } = job
  return createHash('sha256').update(canonical(content)).digest('base64url').slice(0, 22)
}

function toRecord({ job, payload, dueAt }: ValidatedJob): EnqueueRecord {
  return {
    id: job.id,
    payload,
    dueAt,
    priority: job.priority,
    type: job.type,
    maxAttempts: job.maxAttempts,
    batchId: job.batchId ?? '',
    rcpt: recipientList(job),
    idempotencyKey: job.idempotencyKey,
    fingerprint: job.idempotencyKey !== undefined ? jobFingerprint(job) : undefined,
  }
}

function conflictError(key: string, existingId: string, index?: number): MailstreamError {
  const where = index === undefined ? '' : `jobs[${index}]: `
  const others = index === undefined ? '' : ' (the other jobs of the call were written: calling again adds nothing)'
  return new MailstreamError(
    CONFLICT,
    `${where}idempotencyKey: '${key}' was used for job ${existingId} with other content; nothing was written for this job${others}`,
    { field: index === undefined ? 'idempotencyKey' : `${index}.idempotencyKey` },
  )
}

/**
 * `enqueue` and `enqueueMany` of a queue created with `strictIdempotency: true`: each job with an
 * idempotency key carries its fingerprint, stored with the key, and a job whose key names a job
 * of another fingerprint is refused with `E_IDEMPOTENCY_CONFLICT` (nothing is written for it).
 * In `enqueueMany` the other jobs of the call are written; the error names the first conflict.
 */
export function createStrictEnqueue(context: QueueContext): Pick<EmailQueue, 'enqueue' | 'enqueueMany'> {
  const { keys, assertOpen } = context

  async function toResult(reply: EnqueueReply, via: RedisClient): Promise<EnqueueResult> {
    const { id, status, created } = reply
    if (created === 'new') return { id, status: status as JobStatusName, duplicate: false }
    if (created === 'cancelled') return { id, status: 'cancelled', duplicate: false }
    const current = status || (await via.hget(keys.status(id), STATUS.status))
    return { id, status: (current ?? 'unknown') as JobStatusName, duplicate: true }
  }

  async function write(list: readonly ValidatedJob[], via: RedisClient, many: boolean): Promise<EnqueueResult[]> {
    const results: EnqueueResult[] = []
    let conflict: MailstreamError | undefined
    for (let start = 0; start < list.length; start += JOBS_PER_PIPELINE) {
      const chunk = list.slice(start, start + JOBS_PER_PIPELINE)
      const replies = await enqueue(via, keys, {
        now: Date.now(),
        idempotencyTtlSeconds: context.idempotencyTtlSeconds,
        records: chunk.map(toRecord),
      })
      for (const [index, reply] of replies.entries()) {
        if (reply.created === 'conflict') {
          const job = (chunk[index] as ValidatedJob).job
          conflict ??= conflictError(job.idempotencyKey as string, reply.id, many ? start + index : undefined)
        } else {
          results.push(await toResult(reply, via))
        }
      }
    }
    if (conflict) throw conflict
    return results
  }

  return {
    async enqueue(input) {
      assertOpen()
      const [result] = await write([validateJob(input)], context.client, false)
      return result as EnqueueResult
    },

    async enqueueMany(inputs) {
      assertOpen()
      if (!Array.isArray(inputs)) {
        throw new MailstreamError('E_VALIDATION', 'jobs: must be an array', { field: 'jobs' })
      }
      const now = Date.now()
      const validated = inputs.map((input, index) => {
        try {
          return validateJob(input, now)
        } catch (error) {
          const inner = error as MailstreamError
          throw new MailstreamError('E_VALIDATION', `jobs[${index}]: ${inner.message.replace('[mailstream] ', '')}`, {
            field: `${index}.${inner.field ?? 'job'}`,
            cause: inner,
          })
        }
      })
      return write(validated, context.steps, true)
    },
  }
}
