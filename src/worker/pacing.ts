import type { z } from 'zod'
import type { ProviderCharge } from '../lua/gcra.js'
import type { RedisClient } from '../redis.js'
import type { PaceEvent } from './pace.js'
import {
  createProviders,
  type ProviderPaceEvent,
  type Providers,
  type providerPacingSchema,
  type providerRatesSchema,
} from './providers.js'
import { createQuota, type dailyQuotaSchema } from './quota.js'
import { createRate, type rateLimitSchema } from './rate.js'
import { type ChargeStop, createWaits } from './waits.js'

export type { PaceEvent } from './pace.js'
export {
  type ProviderPaceEvent,
  type ProviderRate,
  providerPacingSchema,
  providerRatesSchema,
  type WorkerProviderPacing,
  type WorkerProviderRates,
} from './providers.js'
export { dailyQuotaSchema, type WorkerDailyQuota } from './quota.js'
export { rateLimitSchema, type WorkerRateLimit } from './rate.js'

export interface PacingHooks {
  redis(): RedisClient
  /** True once the worker has given up on its in-flight work (a hard stop). */
  abandoned(): boolean
  onPace(event: PaceEvent): void
  onProviderPace(event: ProviderPaceEvent): void
  onQuota(paused: boolean, reason: string): void
  /** Units were reserved: the dispatcher may look for more work. */
  onCharged(): void
  onError(error: unknown, what: string): void
}

/** `go`, or how the charge ended without a send (a delay, or abandoned). */
export type ChargeResult = { kind: 'go' } | ChargeStop

export interface Pacing {
  /** This worker's pace in recipients per second; undefined without `rateLimit`. */
  readonly pace: number | undefined
  /**
   * Recipients this worker may fetch work for now (held work subtracted). When none, `waitMs`
   * says when to ask again. Jobs are charged later, one by one, by `charge`.
   */
  allowance(): Promise<{ units: number; waitMs: number }>
  /** Counts fetched work that is not charged yet, so that the next allowance leaves it out. */
  hold(work: object, units: number): void
  release(work: object): void
  /** The per-provider pacing; undefined without `providerRates`. */
  readonly providers: Providers | undefined
  /**
   * Charges `cost` recipients right before a send (and each provider's, all or nothing) and waits
   * until they may go.
   */
  charge(work: object, cost: number, charges?: readonly ProviderCharge[]): Promise<ChargeResult>
  /** The transport reported a throttle: lower this worker's pace. */
  throttled(): void
  /** Wakes every charge that is waiting (the worker is stopping hard). */
  interrupt(): void
}

/**
 * The worker's pacing: a GCRA limiter shared through Redis, this worker's own AIMD pace, and a
 * rolling daily quota. Jobs never wait longer than `maxWaitMs` for their units (they are re-delayed
 * instead), so that a waiting job does not approach its entry's visibility timeout.
 */
export function createPacing(
  prefix: string,
  rateLimit: z.output<typeof rateLimitSchema>,
  dailyQuota: z.output<typeof dailyQuotaSchema>,
  maxWaitMs: number,
  hooks: PacingHooks,
  providerOptions?: {
    rates: z.output<typeof providerRatesSchema>
    pacing: z.output<typeof providerPacingSchema>
  },
): Pacing | undefined {
  if (!rateLimit && dailyQuota === undefined) return undefined
  const waits = createWaits(hooks)
  const rates = providerOptions?.rates
  const makeProviders =
    rates && Object.keys(rates).length > 0
      ? (globalKey: string) => createProviders(globalKey, rates, providerOptions.pacing, hooks)
      : undefined
  const rate = rateLimit && createRate(prefix, rateLimit, maxWaitMs, hooks, waits, makeProviders)
  const quota = dailyQuota === undefined ? undefined : createQuota(prefix, dailyQuota, hooks, waits)
  const held = new Map<object, number>()
  let heldUnits = 0
  /**
   * Jobs parked for their provider since the last allowance: they were fetched and took no global
   * units, so the next allowance fetches as many more (the other providers keep their full rate).
   */
  let parked = 0

  function release(work: object): void {
    const units = held.get(work)
    if (units === undefined) return
    held.delete(work)
    heldUnits -= units
  }

  return {
    get pace() {
      return rate?.pace
    },

    providers: rate?.providers,

    async allowance() {
      const client = hooks.redis()
      const [shared, room] = await Promise.all([rate?.peek(client), quota?.peek(client)])
      let units = Number.POSITIVE_INFINITY
      let waitMs = 0
      if (quota && room) {
        const left = quota.room(room)
        if (left.units <= 0) return left
        units = left.units
      }
      if (rate && shared) {
        const free = rate.room(shared)
        units = Math.min(units, free.units)
        waitMs = free.waitMs
      }
      units -= heldUnits
      if (parked > 0) {
        units = Math.max(units, 0) + parked
        parked = 0
      }
      // Held work is charged within moments (and `onCharged` wakes the caller sooner).
      if (units <= 0 && waitMs <= 0) waitMs = Math.min(rate ? rate.intervalMs : 50, 50)
      return { units: Math.max(0, units), waitMs: Math.max(1, Math.ceil(waitMs)) }
    },

    hold(work, units) {
      held.set(work, units)
      heldUnits += units
    },

    release,

    async charge(work, cost, charges) {
      const settled = () => release(work)
      if (cost <= 0) {
        settled()
        return { kind: 'go' }
      }
      const rateStop = rate && (await rate.charge(cost, settled, charges))
      if (rateStop) {
        if (rateStop.kind === 'park' || (rateStop.kind === 'delay' && charges?.length)) parked++
        return rateStop
      }
      if (quota) {
        // Charged last, right before the send, so that a job re-delayed above is not counted.
        const quotaStop = await quota.charge(cost, settled)
        if (quotaStop) return quotaStop
        if (!rate) hooks.onCharged()
      }
      rate?.record(cost)
      return { kind: 'go' }
    },

    throttled() {
      rate?.throttled()
    },

    interrupt: waits.interrupt,
  }
}
