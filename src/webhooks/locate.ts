import { ID_RE } from '../job.js'
import type { QueueInternals } from '../queue/internals.js'
import { STATUS } from '../status.js'
import type { ParsedEvent } from './ses-event.js'

/** The job and batch an event belongs to; `found` when the job's status hash still exists. */
export interface EventOwner {
  jobId?: string
  batchId?: string
  found: boolean
  /** The traceparent of the job's enqueue span, when it was traced. */
  trace?: string
}

export interface EventLocator {
  /** Finds the job and batch an event names. A job whose status expired is left alone. */
  locate(event: ParsedEvent): Promise<EventOwner>
}

/**
 * Reads the `job_id` and `batch_id` tags of SES events against the queue's Redis. `decode` turns
 * a tag value back into an id when the transport had to encode it; either form may be the id.
 */
export function createEventLocator({
  redis,
  keys,
  decode,
}: Pick<QueueInternals, 'redis' | 'keys'> & { decode: (value: string) => string }): EventLocator {
  /** The tag value itself first, then its decoded form: ids that could name a job or batch. */
  function candidates(tag: string | undefined): string[] {
    if (tag === undefined) return []
    let decoded: string | undefined
    try {
      decoded = decode(tag)
    } catch {
      decoded = undefined
    }
    return [...new Set([tag, decoded])].filter((id): id is string => typeof id === 'string' && ID_RE.test(id))
  }

  return {
    async locate(event) {
      const jobIds = candidates(event.jobTag)
      const batchIds = candidates(event.batchTag)
      if (jobIds.length === 0 && batchIds.length === 0) return { found: false }
      const pipeline = redis.pipeline()
      for (const id of jobIds) pipeline.hmget(keys.status(id), STATUS.status, STATUS.batch, STATUS.trace)
      for (const id of batchIds) pipeline.exists(keys.batch(id))
      const replies = (await pipeline.exec()) ?? []
      for (const [error] of replies) if (error) throw error
      const states = replies.slice(0, jobIds.length).map(([, reply]) => reply as (string | null)[])
      const batchFound = replies.slice(jobIds.length).map(([, reply]) => reply === 1)
      const jobIndex = states.findIndex((state) => state[0] !== null)
      const batchIndex = batchFound.indexOf(true)
      // Nothing in Redis to tell which form is right: the decoded one, as the SES transport encodes.
      const pick = (ids: string[]) => ids[1] ?? ids[0]
      const jobId = jobIndex >= 0 ? jobIds[jobIndex] : pick(jobIds)
      const batchId = batchIndex >= 0 ? batchIds[batchIndex] : (states[jobIndex]?.[1] ?? pick(batchIds))
      const out: EventOwner = { found: jobIndex >= 0 }
      if (jobId !== undefined) out.jobId = jobId
      if (batchId) out.batchId = batchId
      const trace = states[jobIndex]?.[2]
      if (trace) out.trace = trace
      return out
    },
  }
}
