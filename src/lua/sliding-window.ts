import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export interface SlidingWindowReply {
  allowed: boolean
  remaining: number
  /** 0 when allowed; otherwise when the oldest event leaves the window. */
  retryAfterMs: number
}

/**
 * `lua/sliding-window.lua`: records one event in an exact sliding window of `max` events per
 * `windowMs`, unless it is full. `member` names the event (unique); ZREM it to undo.
 */
export async function slidingWindow(
  client: RedisClient,
  key: string,
  { max, windowMs, member }: { max: number; windowMs: number; member: string },
): Promise<SlidingWindowReply> {
  const [allowed, remaining, retryAfterMs] = await runScript<number[]>(
    client,
    'slidingWindow',
    [key],
    [max, windowMs, member],
  )
  return { allowed: allowed === 1, remaining: Number(remaining), retryAfterMs: Number(retryAfterMs) }
}
