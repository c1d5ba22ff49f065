import type { QueueKeys } from './keys.js'
import type { RedisClient } from './redis.js'
import { runScript } from './scripts.js'

/** Counters of one batch, as kept in `P:batch:<batchId>`. */
export interface BatchCounters {
  total: number
  sent: number
  failed: number
  suppressed: number
  cancelled: number
  /** Every job of the batch was enqueued and every one has finished. */
  finished: boolean
}

/** What is published on `P:progress:<batchId>`. */
export interface BatchProgress {
  batchId: string
  /** sent + failed + suppressed + cancelled */
  completed: number
  total: number
  /** completed / total, 0-100, two decimals. */
  percentage: number
  sent: number
  failed: number
  suppressed: number
  cancelled: number
  /** True on the one final message of a batch. */
  done: boolean
}

/** `{ total, sent, failed, suppressed, cancelled, finished }` as the Lua scripts reply it. */
export function countersFromReply(reply: readonly (number | string)[]): BatchCounters {
  const [total, sent, failed, suppressed, cancelled, finished] = reply.map(Number)
  return {
    total: total ?? 0,
    sent: sent ?? 0,
    failed: failed ?? 0,
    suppressed: suppressed ?? 0,
    cancelled: cancelled ?? 0,
    finished: finished === 1,
  }
}

export function toProgress(batchId: string, counters: BatchCounters): BatchProgress {
  const completed = counters.sent + counters.failed + counters.suppressed + counters.cancelled
  const percentage = counters.finished
    ? 100
    : counters.total === 0
      ? 0
      : Math.min(100, Math.floor((completed * 10_000) / counters.total) / 100)
  return {
    batchId,
    completed,
    total: counters.total,
    percentage,
    sent: counters.sent,
    failed: counters.failed,
    suppressed: counters.suppressed,
    cancelled: counters.cancelled,
    done: counters.finished,
  }
}

/**
 * Marks a batch as fully enqueued. If its jobs have all finished already, the final progress is
 * published now; otherwise the worker that finishes the last job publishes it.
 */
export async function sealBatch(client: RedisClient, keys: QueueKeys, batchId: string): Promise<BatchCounters> {
  const reply = await runScript<number[]>(
    client,
    'sealBatch',
    [keys.batch(batchId)],
    [Date.now(), batchId, keys.progress(batchId)],
  )
  return countersFromReply(reply)
}
