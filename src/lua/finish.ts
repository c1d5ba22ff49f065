import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import type { StreamIndex } from './entry.js'
import { runScript } from './index.js'

/** How a send ended. `retry` uses an attempt (a transient failure); `throttle` (rate exceeded) does not. */
export type FinishOutcome =
  | { kind: 'sent'; messageId: string }
  | { kind: 'suppressed'; reason: string }
  | { kind: 'dead'; error: string }
  | { kind: 'retry' | 'throttle'; dueAt: number; error: string }

/** One finished job: the entry it was delivered in, and its outcome. */
export interface FinishedJob {
  streamIndex: StreamIndex | number
  entryId: string
  jobId: string
  /** The job as JSON: written back only for `dead` (the letter) and `retry`/`throttle`. */
  payload: string
  /** Recipients, lower-case and ','-joined: written back only for `retry`/`throttle`. */
  rcpt: string
  /** Attempts used, this one included. */
  attempts: number
  /** Throttles in a row after this outcome (0 after anything but a throttle): written back for `retry`/`throttle`. */
  throttles?: number
  /** The job's batch, whose counters and progress it moves; undefined for none. */
  batchId?: string | undefined
  outcome: FinishOutcome
}

export interface FinishCall {
  group: string
  /** Epoch ms. */
  now: number
  /** TTL of a final status. */
  statusTtlSeconds: number
  jobs: readonly FinishedJob[]
  /** Histogram increments (metrics hash field, by) to add with this call. */
  metrics?: Iterable<readonly [field: string, by: number]>
}

/**
 * `lua/finish.lua`: records many outcomes in one call (statuses, acknowledgements, totals,
 * batch counters and progress, histograms). Per job, true when its outcome was applied; false
 * when another delivery of the same job got there first.
 */
export async function finish(
  client: RedisClient,
  keys: QueueKeys,
  { group, now, statusTtlSeconds, jobs, metrics = [] }: FinishCall,
): Promise<boolean[]> {
  const scriptKeys: string[] = [...keys.streams, keys.delayed, keys.dead, keys.stats, keys.metrics]
  const batches = new Map<string, number>()
  const args: (string | number)[] = [group, now, statusTtlSeconds, jobs.length, 0]
  for (const job of jobs) {
    scriptKeys.push(keys.status(job.jobId))
    let batchIndex = 0
    if (job.batchId !== undefined) {
      batchIndex = batches.get(job.batchId) ?? batches.size + 1
      batches.set(job.batchId, batchIndex)
    }
    const { outcome } = job
    args.push(outcome.kind, job.streamIndex, job.entryId, job.jobId, job.attempts, batchIndex)
    switch (outcome.kind) {
      case 'sent':
        args.push(outcome.messageId)
        break
      case 'suppressed':
        args.push(outcome.reason)
        break
      case 'dead':
        args.push(outcome.error, job.payload)
        break
      case 'retry':
      case 'throttle':
        args.push(outcome.dueAt, outcome.error, job.payload, job.rcpt, job.throttles ?? 0)
        break
    }
  }
  args[4] = batches.size
  for (const batchId of batches.keys()) {
    scriptKeys.push(keys.batch(batchId))
    args.push(batchId, keys.progress(batchId))
  }
  for (const [field, by] of metrics) args.push(field, by)
  const applied = await runScript<number[]>(client, 'finish', scriptKeys, args)
  return applied.map((flag) => flag === 1)
}
