import { z } from 'zod'
import { gcraSlowDown } from '../lua/gcra.js'
import { clusterHashTag } from '../options.js'
import type { RedisClient } from '../redis.js'

/**
 * A mailbox provider's shared slow-down (docs/rate-limiting.md, "Per-provider pacing"): its factor
 * lives in Redis next to the global limiter, so that what one worker (an SMTP 421) or the SES
 * webhook (a `DeliveryDelay`) hears slows every worker down.
 */

/**
 * A key in the same Cluster hash slot as `key`, ending in `suffix`: after a key with a hash tag
 * the tag carries over; a key without one is hashed whole, which `{key}` makes the tag.
 */
export function sameSlotKey(key: string, suffix: string): string {
  return clusterHashTag(key) !== null ? `${key}${suffix}` : `{${key}}${suffix}`
}

/** A limiter key of the worker's options (`rateLimit.key`, `dailyQuota.key`). */
export const limiterKeySchema = z.string().regex(/^[^\s]{1,200}$/, 'must be 1-200 characters without spaces')

/** The global limiter key of the workers of `prefix`: `rateLimit.key` when they set one. */
export const globalLimiterKey = (prefix: string, rateLimitKey?: string): string =>
  `rate:limit:${rateLimitKey ?? `${prefix}:send`}`

/** A provider's slow-down state (a hash: `f` factor after the last decrease, `at` when). */
export const providerStateKey = (globalKey: string, provider: string): string =>
  sameSlotKey(globalKey, `:provider:${provider}:state`)

/** `providerPacing.slowDown`: how a provider's rate is lowered and raised back. `false` turns it off. */
export const slowDownSchema = z
  .union([
    z.literal(false),
    z.strictObject({
      decrease: z.number().gt(0).lt(1).default(0.5),
      minFactor: z.number().gt(0).max(1).default(0.05),
      step: z.number().gt(0).max(1).default(0.1),
      cooldownMs: z
        .number()
        .int()
        .min(10)
        .max(24 * 3_600_000)
        .default(60_000),
      guardMs: z.number().int().min(0).max(3_600_000).default(5000),
    }),
  ])
  .prefault({})
export type SlowDownOptions = Exclude<z.output<typeof slowDownSchema>, false>

/**
 * Multiplies `provider`'s factor by `decrease` (at most once per `guardMs` across all callers,
 * never below `minFactor`); it rises by `step` per `cooldownMs` back to 1. Whether it did (not
 * when another caller did moments ago), and the factor now. The caller counts it
 * (`providerSlowDowns` in the metrics hash).
 */
export function slowDownProvider(
  redis: RedisClient,
  globalKey: string,
  provider: string,
  options: SlowDownOptions,
): Promise<{ decreased: boolean; factor: number }> {
  const { decrease, minFactor, step, cooldownMs, guardMs } = options
  return gcraSlowDown(redis, providerStateKey(globalKey, provider), { decrease, minFactor, step, cooldownMs, guardMs })
}
