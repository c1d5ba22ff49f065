import type { EmailJob } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export interface RetryDeadCall {
  /** The letter's entry id in the dead stream. */
  entryId: string
  /** The job as the letter holds it. */
  job: EmailJob
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
  /** Epoch ms. */
  now: number
}

/**
 * `lua/retry-dead.lua`: puts one dead letter back into its send stream as a fresh job (attempts
 * from 0). False when the letter was already gone (retried or purged meanwhile).
 */
export async function retryDead(client: RedisClient, keys: QueueKeys, call: RetryDeadCall): Promise<boolean> {
  const { job } = call
  const statusKey = keys.status(job.id)
  const moved = await runScript<number>(
    client,
    'retryDead',
    [keys.dead, statusKey, keys.stream(job.priority), job.batchId !== undefined ? keys.batch(job.batchId) : statusKey],
    [
      call.entryId,
      job.id,
      JSON.stringify(job),
      job.priority,
      job.type,
      call.now,
      job.maxAttempts,
      job.batchId ?? '',
      call.rcpt,
    ],
  )
  return moved === 1
}
