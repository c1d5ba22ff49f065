import { z } from 'zod'
import { type GcraReply, gcra, gcraPace, type ProviderCharge } from '../lua/gcra.js'
import { globalLimiterKey, limiterKeySchema } from '../providers/slow-down.js'
import type { RedisClient } from '../redis.js'
import { createPace, type PaceEvent } from './pace.js'
import type { Providers } from './providers.js'
import type { ChargeStop, Waits } from './waits.js'

/** The worker's `rateLimit` option. */
export interface WorkerRateLimit {
  /** Recipients per second, shared by every worker on the same key (SES MaxSendRate). Default 14. */
  perSecond?: number
  /** Recipients that may go at once after a quiet spell. Default 1 (evenly spaced sends). */
  burst?: number
  /** Limiter key, Redis key `rate:limit:<key>`. Default `<prefix>:send`: every worker on the prefix shares it. */
  key?: string
  /**
   * After a `throttle` from the transport this worker's pace is multiplied by `decrease` (at most
   * once per `intervalMs`), then raised by `increase * perSecond` every `intervalMs` without a
   * throttle until it is back at `perSecond`. Defaults 0.5, 0.1, 1000; `minPerSecond` defaults to
   * `perSecond / 20`.
   */
  aimd?: { decrease?: number; increase?: number; intervalMs?: number; minPerSecond?: number }
}

export { limiterKeySchema }

export const rateLimitSchema = z
  .strictObject({
    perSecond: z.number().positive().max(1_000_000).default(14),
    burst: z.number().int().min(1).max(1_000_000).default(1),
    key: limiterKeySchema.optional(),
    aimd: z
      .strictObject({
        decrease: z.number().gt(0).lt(1).default(0.5),
        increase: z.number().gt(0).max(1).default(0.1),
        intervalMs: z.number().int().min(10).max(3_600_000).default(1000),
        minPerSecond: z.number().positive().optional(),
      })
      .prefault({}),
  })
  .optional()

export interface RateHooks {
  redis(): RedisClient
  abandoned(): boolean
  onPace(event: PaceEvent): void
  /** Units were reserved: the dispatcher may look for more work. */
  onCharged(): void
}

/**
 * This worker's share of the send rate: the GCRA limiter shared through Redis, held to this
 * worker's own AIMD pace. A job never waits longer than `maxWaitMs` for its units.
 */
export function createRate(
  prefix: string,
  rateLimit: NonNullable<z.output<typeof rateLimitSchema>>,
  maxWaitMs: number,
  hooks: RateHooks,
  waits: Waits,
  makeProviders?: (globalKey: string) => Providers,
) {
  const key = globalLimiterKey(prefix, rateLimit.key)
  const providers = makeProviders?.(key)
  const intervalMs = 1000 / rateLimit.perSecond
  const { burst } = rateLimit
  // Work is fetched when its units are free within one emission interval, so that a reservation is
  // made before the bucket runs dry (no gaps), while a later high-priority job waits at most a few
  // units behind what was fetched. Never further ahead than a job may wait.
  const lookaheadMs = Math.min(Math.max(intervalMs, 2), maxWaitMs)
  const pace = createPace(rateLimit.perSecond, rateLimit.aimd, hooks.onPace)
  const reserve = (units: number) => () => gcra(hooks.redis(), key, { intervalMs, burst, cost: units, mode: 'reserve' })
  /** The global limiter and the providers' in one call, all or nothing. */
  const paced =
    (units: number, charges: readonly ProviderCharge[], sign = 1) =>
    () =>
      gcraPace(hooks.redis(), {
        key,
        intervalMs,
        burst,
        cost: units * sign,
        parkAfterMs: Math.min(providers?.parkAfterMs ?? 0, maxWaitMs),
        horizonMs: providers?.horizonMs ?? maxWaitMs,
        lateMs: providers?.lateMs ?? 100,
        providers: sign === 1 ? charges : charges.map((charge) => ({ ...charge, cost: -charge.cost })),
      })

  return {
    intervalMs,
    get pace(): number {
      return pace.pace
    },

    /** Looks at the shared limiter without taking anything. */
    peek(client: RedisClient): Promise<GcraReply> {
      return gcra(client, key, { intervalMs, burst, cost: 0, mode: 'take', lookaheadMs })
    },

    /** Units free soon by the shared limiter (`peek`'s reply) and this worker's pace; when to ask again if none. */
    room(shared: GcraReply): { units: number; waitMs: number } {
      const own = pace.room(lookaheadMs)
      const waitMs = shared.soon <= 0 ? Math.max(0, shared.retryAfterMs - lookaheadMs) : 0
      return { units: Math.min(shared.soon, own.units), waitMs: Math.max(waitMs, own.waitMs) }
    },

    /**
     * Takes `cost` units and waits until they may go; undefined when they may. `settled` runs as
     * soon as the work no longer needs counting as held (units reserved, or the charge given up).
     */
    providers,

    /**
     * Takes `cost` units (and each provider's, all or nothing) and waits until they may go;
     * undefined when they may. `settled` runs as soon as the work no longer needs counting as held
     * (units reserved, or the charge given up). A provider out of budget parks the job: its units
     * are reserved for a later slot and the job waits for it in the delayed set.
     */
    async charge(
      cost: number,
      settled: () => void,
      charges: readonly ProviderCharge[] = [],
    ): Promise<ChargeStop | undefined> {
      // This worker's own, lowered pace comes first, so that it holds no shared units while it waits.
      const booked = pace.book(cost, maxWaitMs)
      if (typeof booked !== 'number') {
        settled()
        return booked
      }
      if (booked > 0) {
        await waits.sleep(booked)
        if (hooks.abandoned()) {
          settled()
          return { kind: 'abandoned' }
        }
      }
      let waitMs: number
      if (charges.length === 0) {
        const reply = await waits.retrying('charging the rate limiter failed, retrying', reserve(cost))
        settled()
        hooks.onCharged()
        if (!reply) return { kind: 'abandoned' }
        waitMs = reply.waitMs
      } else {
        const reply = await waits.retrying('charging the rate limiter failed, retrying', paced(cost, charges))
        settled()
        hooks.onCharged()
        if (!reply) return { kind: 'abandoned' }
        providers?.observed(charges, reply.factors)
        const names = charges.map((charge) => charge.provider).join(', ')
        if (reply.state === 'parked') {
          return {
            kind: 'park',
            retryAfterMs: reply.providerWaitMs,
            reason: `parked for the rate of ${names}`,
            slot: reply.providerAt,
          }
        }
        if (reply.state === 'capped') {
          const retryAfterMs = providers?.nextWarmupDay() ?? 3_600_000
          return { kind: 'delay', retryAfterMs, reason: `warm-up: today's cap of ${names} is reached` }
        }
        if (reply.state === 'full') {
          // Booked beyond the horizon: back when the horizon has room, spread so that they do not come at once.
          const horizonMs = providers?.horizonMs ?? maxWaitMs
          const retryAfterMs = reply.providerWaitMs - horizonMs + Math.floor(Math.random() * (horizonMs / 2))
          return {
            kind: 'delay',
            retryAfterMs: Math.max(1, retryAfterMs),
            reason: `${names} booked over ${horizonMs} ms ahead`,
          }
        }
        waitMs = reply.waitMs
        if (waitMs > maxWaitMs) {
          await waits.retrying('returning rate limiter units failed, retrying', paced(cost, charges, -1))
          return { kind: 'delay', retryAfterMs: waitMs, reason: `${cost} recipients wait for the rate limit` }
        }
      }
      if (waitMs > maxWaitMs) {
        // Waiting this long would hold the stream entry near its visibility timeout: give the units back.
        await waits.retrying('returning rate limiter units failed, retrying', reserve(-cost))
        return { kind: 'delay', retryAfterMs: waitMs, reason: `${cost} recipients wait for the rate limit` }
      }
      if (waitMs > 0) {
        await waits.sleep(waitMs)
        if (hooks.abandoned()) return { kind: 'abandoned' }
      }
      return undefined
    },

    record: pace.record,
    throttled: pace.throttled,
  }
}
