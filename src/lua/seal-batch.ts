import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

/** A batch's counters as the script replies them (`{ total, sent, failed, suppressed, cancelled, finished }`). */
export interface SealedBatch {
  total: number
  sent: number
  failed: number
  suppressed: number
  cancelled: number
  /** Every job was enqueued and every one has finished (its final progress was published). */
  finished: boolean
}

/** `lua/seal-batch.lua`: marks a batch fully enqueued; its counters after that. */
export async function sealBatch(
  client: RedisClient,
  keys: QueueKeys,
  { batchId, now }: { batchId: string; now: number },
): Promise<SealedBatch> {
  const reply = await runScript<(number | string)[]>(
    client,
    'sealBatch',
    [keys.batch(batchId)],
    [now, batchId, keys.progress(batchId)],
  )
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
