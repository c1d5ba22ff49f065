import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

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

/** `{ total, sent, failed, suppressed, cancelled, finished }` as the batch scripts reply it. */
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

/**
 * `lua/seal-batch.lua`: marks a batch as fully enqueued. If its jobs have all finished already,
 * the final progress is published now; otherwise the worker that finishes the last job publishes it.
 */
export async function sealBatch(
  client: RedisClient,
  keys: QueueKeys,
  batchId: string,
  now = Date.now(),
): Promise<BatchCounters> {
  const reply = await runScript<number[]>(
    client,
    'sealBatch',
    [keys.batch(batchId)],
    [now, batchId, keys.progress(batchId)],
  )
  return countersFromReply(reply)
}
