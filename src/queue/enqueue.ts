// Single and many-job enqueue: validate, pack as records, write through the enqueue script.
import { MailstreamError } from '../errors.js'
import { recipientList, type ValidatedJob, validateJob } from '../job.js'
import { type EnqueueRecord, enqueue } from '../lua/enqueue.js'
import type { RedisClient } from '../redis.js'
import { type JobStatusName, STATUS } from '../status.js'
import type { EmailQueue, EnqueueResult, QueueContext } from './types.js'

/** Jobs per pipeline: bounds the memory of a big `enqueueMany`. */
const JOBS_PER_PIPELINE = 5000

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
  }
}

/** `enqueue` and `enqueueMany`. */
export function createEnqueue(context: QueueContext): Pick<EmailQueue, 'enqueue' | 'enqueueMany'> {
  const { keys, assertOpen } = context

  async function write(list: readonly ValidatedJob[], via: RedisClient): Promise<EnqueueResult[]> {
    const results: EnqueueResult[] = []
    for (let start = 0; start < list.length; start += JOBS_PER_PIPELINE) {
      const records = list.slice(start, start + JOBS_PER_PIPELINE).map(toRecord)
      const replies = await enqueue(via, keys, {
        now: Date.now(),
        idempotencyTtlSeconds: context.idempotencyTtlSeconds,
        records,
      })
      for (const { id, status, created } of replies) {
        if (created === 'new') results.push({ id, status: status as JobStatusName, duplicate: false })
        else if (created === 'cancelled') results.push({ id, status: 'cancelled', duplicate: false })
        else {
          // Found through the idempotency key: read the existing job's status.
          const current = status || (await via.hget(keys.status(id), STATUS.status))
          results.push({ id, status: (current ?? 'unknown') as JobStatusName, duplicate: true })
        }
      }
    }
    return results
  }

  return {
    async enqueue(input) {
      assertOpen()
      const [result] = await write([validateJob(input)], context.client)
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
      return write(validated, context.steps)
    },
  }
}
