import type { Priority } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export interface RetryDeadCall {
  /** The letter's id in the dead stream. */
  entryId: string
  jobId: string
  /** The job as JSON, as read from the letter. */
  payload: string
  priority: Priority
  type: string
  maxAttempts: number
  /** '' for none. */
  batchId: string
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
  /** Epoch ms. */
  now: number
}

/** `lua/retry-dead.lua`: true when the letter went back to its send stream, false when it was gone. */
export async function retryDead(client: RedisClient, keys: QueueKeys, call: RetryDeadCall): Promise<boolean> {
  const statusKey = keys.status(call.jobId)
  const moved = await runScript<number>(
    client,
    'retryDead',
    [keys.dead, statusKey, keys.stream(call.priority), call.batchId !== '' ? keys.batch(call.batchId) : statusKey],
    [
      call.entryId,
      call.jobId,
      call.payload,
      call.priority,
      call.type,
      call.now,
      call.maxAttempts,
      call.batchId,
      call.rcpt,
    ],
  )
  return moved === 1
}
