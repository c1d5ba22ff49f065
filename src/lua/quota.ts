import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export interface QuotaParams {
  /** Units allowed in the window. */
  max: number
  windowMs: number
  /** Width of one time bucket: room comes back at most this late. */
  bucketMs: number
  /** Units to add; 0 only looks. */
  cost: number
}

export interface QuotaReply {
  allowed: boolean
  remaining: number
  /** When the refused cost would fit (for cost 0: when one unit is free); 0 when there is room. */
  retryAfterMs: number
  /** Units in the window, after this call. */
  used: number
}

/** `lua/quota.lua`: an exact rolling-window quota on one key. */
export async function rollingQuota(client: RedisClient, key: string, params: QuotaParams): Promise<QuotaReply> {
  const [allowed, remaining, retryAfterMs, used] = await runScript<number[]>(
    client,
    'quota',
    [key],
    [params.max, params.windowMs, params.bucketMs, params.cost],
  )
  return {
    allowed: allowed === 1,
    remaining: Number(remaining),
    retryAfterMs: Number(retryAfterMs),
    used: Number(used),
  }
}
