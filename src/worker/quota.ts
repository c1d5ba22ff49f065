import { z } from 'zod'
import { type QuotaReply, rollingQuota } from '../lua/quota.js'
import type { RedisClient } from '../redis.js'
import { limiterKeySchema } from './rate.js'
import type { ChargeStop, Waits } from './waits.js'

/** The worker's `dailyQuota` option: a number is `{ max }`. */
export type WorkerDailyQuota =
  | number
  | {
      /** Recipients per window. */
      max: number
      /** Length of the rolling window. Default 86 400 000 (24 h). */
      windowMs?: number
      /** Quota key, Redis key `rate:limit:<key>`. Default `<prefix>:daily`. */
      key?: string
    }

export const dailyQuotaSchema = z
  .union([
    z.number().int().positive(),
    z.strictObject({
      max: z.number().int().positive(),
      windowMs: z
        .number()
        .int()
        .min(1000)
        .max(366 * 86_400_000)
        .default(86_400_000),
      key: limiterKeySchema.optional(),
    }),
  ])
  .optional()

export interface QuotaHooks {
  redis(): RedisClient
  onQuota(paused: boolean, reason: string): void
}

/** The rolling daily quota shared through Redis; reports when it runs out and when it has room again. */
export function createQuota(
  prefix: string,
  dailyQuota: NonNullable<z.output<typeof dailyQuotaSchema>>,
  hooks: QuotaHooks,
  waits: Waits,
) {
  const options = typeof dailyQuota === 'number' ? { max: dailyQuota, windowMs: 86_400_000 } : dailyQuota
  const key = `rate:limit:${options.key ?? `${prefix}:daily`}`
  const { max, windowMs } = options
  // 86 400 buckets per window at most: one second for a day.
  const bucketMs = Math.max(1, Math.floor(windowMs / 86_400))
  let paused = false

  function setPaused(value: boolean, reply?: QuotaReply): void {
    if (value === paused) return
    paused = value
    hooks.onQuota(
      value,
      value
        ? `daily quota reached: ${reply?.used ?? max} of ${max} recipients in the last ${windowMs} ms; room again in ${reply?.retryAfterMs ?? 0} ms`
        : 'daily quota has room again',
    )
  }

  return {
    /** Looks at the quota without using any of it. */
    peek(client: RedisClient): Promise<QuotaReply> {
      return rollingQuota(client, key, { max, windowMs, bucketMs, cost: 0 })
    },

    /** Recipients left by `peek`'s reply; none means paused until `waitMs`. */
    room(reply: QuotaReply): { units: number; waitMs: number } {
      if (reply.remaining <= 0) {
        setPaused(true, reply)
        return { units: 0, waitMs: Math.max(1, reply.retryAfterMs) }
      }
      setPaused(false)
      return { units: reply.remaining, waitMs: 0 }
    },

    /**
     * Uses `cost` recipients of the quota; undefined when they fit. `settled` runs once the quota
     * answered (or the charge was given up).
     */
    async charge(cost: number, settled: () => void): Promise<ChargeStop | undefined> {
      const room = await waits.retrying('charging the daily quota failed, retrying', () =>
        rollingQuota(hooks.redis(), key, { max, windowMs, bucketMs, cost }),
      )
      settled()
      if (!room) return { kind: 'abandoned' }
      if (room.allowed) return undefined
      if (room.remaining <= 0) setPaused(true, room)
      return {
        kind: 'delay',
        retryAfterMs: room.retryAfterMs,
        reason: `daily quota: ${room.used} of ${max} recipients used, ${cost} more do not fit`,
      }
    },
  }
}
