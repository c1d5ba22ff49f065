import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

/** The parameters of one GCRA call, already validated. */
export interface GcraParams {
  /** ms per unit (period / rate), may be fractional. */
  intervalMs: number
  /** Units the bucket holds. */
  burst: number
  /** Units to take: 0 only looks; negative in `reserve` mode gives reserved units back. */
  cost: number
  /** `take` only what is there now; `reserve` always, with `waitMs` saying when it may be used. */
  mode: 'take' | 'reserve'
  /** `soon` counts the units free within this time. Default 0. */
  lookaheadMs?: number
}

export interface GcraReply {
  allowed: boolean
  /** Whole units free now, after this call. */
  remaining: number
  /** 0 when allowed; otherwise when the same cost would be (for cost 0: when one unit is free). */
  retryAfterMs: number
  /** Until the bucket is full again. */
  resetAfterMs: number
  /** `reserve`: how long until the reserved units may be used. */
  waitMs: number
  /** Whole units free within the lookahead. */
  soon: number
}

/** `lua/gcra.lua` on one key (cluster-safe: one key per call). */
export async function gcra(client: RedisClient, key: string, params: GcraParams): Promise<GcraReply> {
  const [allowed, remaining, retryAfterMs, resetAfterMs, waitMs, soon] = await runScript<number[]>(
    client,
    'gcra',
    [key],
    [String(params.intervalMs), params.burst, params.cost, params.mode, params.lookaheadMs ?? 0],
  )
  return {
    allowed: allowed === 1,
    remaining: Number(remaining),
    retryAfterMs: Number(retryAfterMs),
    resetAfterMs: Number(resetAfterMs),
    waitMs: Number(waitMs),
    soon: Number(soon),
  }
}
