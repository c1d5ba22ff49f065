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

/** One mailbox provider's part of a `pace` call. */
export interface ProviderCharge {
  /** The provider's name (for events and errors). */
  provider: string
  /** Its limiter (TAT) key and its state hash (slow-down), in the global key's hash slot. */
  key: string
  stateKey: string
  /** ms per unit at full rate. */
  intervalMs: number
  burst: number
  /** Units to take; negative gives reserved units back. */
  cost: number
  /** The slow-down factor rises by `step` per `cooldownMs` since its last decrease. */
  step: number
  cooldownMs: number
  /** Server ms of the slot a parked job reserved for these units; not charged again near it. */
  slot?: number | undefined
  /** The provider's warm-up hash, and for a job under warm-up, today's key, whether it counts, and the caps. */
  warmKey: string
  warmup?: { today: string; counting: boolean; caps: readonly number[] } | undefined
}

export interface PaceCall {
  /** The global limiter; `cost` 0 leaves it alone. */
  key: string
  intervalMs: number
  burst: number
  cost: number
  /** A provider wait up to this is waited out; a longer one parks the job. */
  parkAfterMs: number
  /** A provider wait beyond this reserves nothing. */
  horizonMs: number
  /** How late after its slot a parked job may still use it (later, its providers are charged anew). */
  lateMs: number
  providers: readonly ProviderCharge[]
}

export interface PaceReply {
  /**
   * `go`: every limiter charged; `parked`: only the providers' units reserved; `full` (no room
   * within the horizon) and `capped` (a warm-up cap for today is reached): nothing charged.
   */
  state: 'go' | 'parked' | 'full' | 'capped'
  /** `go`: how long until the units may be used. */
  waitMs: number
  /** How long until the providers' units may be used (or would be, for `full`). */
  providerWaitMs: number
  /** Server ms at which the providers' units may be used (the slot of a park). */
  providerAt: number
  /** Each provider's slow-down factor (1 at full rate), in the order given. */
  factors: number[]
}

const PACE_STATES = ['go', 'parked', 'full', 'capped'] as const

/**
 * `lua/gcra.lua` in `pace` mode: the global limiter and the job's provider limiters charged in one
 * call, all or nothing (every key in one hash slot, so Cluster-safe).
 */
export async function gcraPace(client: RedisClient, call: PaceCall): Promise<PaceReply> {
  const keys = [call.key]
  const args: (string | number)[] = [
    String(call.intervalMs),
    call.burst,
    call.cost,
    'pace',
    call.parkAfterMs,
    call.horizonMs,
    call.lateMs,
  ]
  for (const provider of call.providers) {
    keys.push(provider.key, provider.stateKey, provider.warmKey)
    args.push(
      String(provider.intervalMs),
      provider.burst,
      provider.cost,
      provider.step,
      provider.cooldownMs,
      provider.slot ?? 0,
      provider.warmup?.today ?? '',
      provider.warmup?.counting ? 1 : 0,
      provider.warmup?.caps.join(',') ?? '',
    )
  }
  const [state, waitMs, providerWaitMs, providerAt, ...factors] = await runScript<(number | string)[]>(
    client,
    'gcra',
    keys,
    args,
  )
  return {
    state: PACE_STATES[Number(state)] ?? 'full',
    waitMs: Number(waitMs),
    providerWaitMs: Number(providerWaitMs),
    providerAt: Number(providerAt),
    factors: factors.map(Number),
  }
}

export interface SlowDownCall {
  decrease: number
  minFactor: number
  step: number
  cooldownMs: number
  /** No second decrease within this time of the last. */
  guardMs: number
}

/** `lua/gcra.lua` in `slow` mode: lowers a provider's factor; whether it did, and the factor now. */
export async function gcraSlowDown(
  client: RedisClient,
  stateKey: string,
  call: SlowDownCall,
): Promise<{ decreased: boolean; factor: number }> {
  const [decreased, factor] = await runScript<(number | string)[]>(
    client,
    'gcra',
    [stateKey],
    [1, 1, 0, 'slow', call.decrease, call.minFactor, call.step, call.cooldownMs, call.guardMs],
  )
  return { decreased: Number(decreased) === 1, factor: Number(factor) }
}
