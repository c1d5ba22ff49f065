import { z } from 'zod'
import { gcra, type QuotaReply, rollingQuota } from '../rate-limiter.js'
import type { RedisClient } from '../redis.js'

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

export interface PaceEvent {
  /** Recipients per second this worker allows itself now. */
  pace: number
  perSecond: number
  reason: 'throttle' | 'recover'
}

const keySchema = z.string().regex(/^[^\s]{1,200}$/, 'must be 1-200 characters without spaces')

export const rateLimitSchema = z
  .strictObject({
    perSecond: z.number().positive().max(1_000_000).default(14),
    burst: z.number().int().min(1).max(1_000_000).default(1),
    key: keySchema.optional(),
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
      key: keySchema.optional(),
    }),
  ])
  .optional()

export interface PacingHooks {
  redis(): RedisClient
  /** True once the worker has given up on its in-flight work (a hard stop). */
  abandoned(): boolean
  onPace(event: PaceEvent): void
  onQuota(paused: boolean, reason: string): void
  /** Units were reserved: the dispatcher may look for more work. */
  onCharged(): void
  onError(error: unknown, what: string): void
}

export type ChargeResult =
  | { kind: 'go' }
  /** No room soon enough (daily quota, or a long wait): re-delay the job by `retryAfterMs`, no attempt used. */
  | { kind: 'delay'; retryAfterMs: number; reason: string }
  | { kind: 'abandoned' }

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
  /** Charges `cost` recipients right before a send and waits until they may go. */
  charge(work: object, cost: number): Promise<ChargeResult>
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
): Pacing | undefined {
  if (!rateLimit && dailyQuota === undefined) return undefined
  const rate = rateLimit && {
    key: `rate:limit:${rateLimit.key ?? `${prefix}:send`}`,
    perSecond: rateLimit.perSecond,
    intervalMs: 1000 / rateLimit.perSecond,
    burst: rateLimit.burst,
    decrease: rateLimit.aimd.decrease,
    increaseBy: rateLimit.aimd.increase * rateLimit.perSecond,
    aimdIntervalMs: rateLimit.aimd.intervalMs,
    minPerSecond: Math.min(rateLimit.perSecond, rateLimit.aimd.minPerSecond ?? rateLimit.perSecond / 20),
  }
  const quotaOptions = typeof dailyQuota === 'number' ? { max: dailyQuota, windowMs: 86_400_000 } : dailyQuota
  const quota = quotaOptions && {
    key: `rate:limit:${quotaOptions.key ?? `${prefix}:daily`}`,
    max: quotaOptions.max,
    windowMs: quotaOptions.windowMs,
    // 86 400 buckets per window at most: one second for a day.
    bucketMs: Math.max(1, Math.floor(quotaOptions.windowMs / 86_400)),
  }
  // Work is fetched when its units are free within one emission interval, so that a reservation is
  // made before the bucket runs dry (no gaps), while a later high-priority job waits at most a few
  // units behind what was fetched. Never further ahead than a job may wait.
  const lookaheadMs = rate ? Math.min(Math.max(rate.intervalMs, 2), maxWaitMs) : 0

  const held = new Map<object, number>()
  let heldUnits = 0
  /** The pace after the last decrease and when it happened; undefined at full pace. */
  let lowered: { pace: number; at: number } | undefined
  let reportedPace = rate?.perSecond
  /** Virtual schedule of this worker's own pace: when its next unit may start (epoch ms). */
  let localNextAt = 0
  /** Recent charges [epoch ms, units], for the observed rate. */
  const recent: [number, number][] = []
  let quotaPaused = false
  const sleepers = new Set<() => void>()

  function release(work: object): void {
    const units = held.get(work)
    if (units === undefined) return
    held.delete(work)
    heldUnits -= units
  }

  function sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        sleepers.delete(done)
        resolve()
      }
      sleepers.add(done)
    })
  }

  /** The pace now: raised by one step per interval since the last decrease. Reports changes unless `quiet`. */
  function currentPace(now: number, quiet = false): number | undefined {
    if (!rate) return undefined
    if (!lowered) return rate.perSecond
    const steps = Math.floor((now - lowered.at) / rate.aimdIntervalMs)
    const pace = Math.min(rate.perSecond, lowered.pace + steps * rate.increaseBy)
    if (quiet) return pace
    if (pace >= rate.perSecond) lowered = undefined
    if (pace !== reportedPace) {
      reportedPace = pace
      hooks.onPace({ pace, perSecond: rate.perSecond, reason: 'recover' })
    }
    return pace
  }

  function observedPerSecond(now: number): number | undefined {
    while (recent.length > 0 && (recent[0] as [number, number])[0] <= now - 1000) recent.shift()
    const first = recent[0]
    if (!first) return undefined
    const spanMs = Math.max(now - first[0], 1)
    // Too short a span says little about the rate.
    if (spanMs < 250) return undefined
    let units = 0
    for (const [, cost] of recent) units += cost
    return (units * 1000) / Math.min(1000, spanMs)
  }

  function setQuotaPaused(paused: boolean, reply?: QuotaReply): void {
    if (!quota || paused === quotaPaused) return
    quotaPaused = paused
    hooks.onQuota(
      paused,
      paused
        ? `daily quota reached: ${reply?.used ?? quota.max} of ${quota.max} recipients in the last ${quota.windowMs} ms; room again in ${reply?.retryAfterMs ?? 0} ms`
        : 'daily quota has room again',
    )
  }

  /** Retries a Redis call through outages; undefined when the worker gave up meanwhile. */
  async function retrying<T>(what: string, call: () => Promise<T>): Promise<T | undefined> {
    for (let failures = 0; ; failures++) {
      try {
        return await call()
      } catch (error) {
        if (failures === 0) hooks.onError(error, what) // the first failure of a run, not every retry
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)))
        if (hooks.abandoned()) return undefined
      }
    }
  }

  return {
    get pace() {
      return currentPace(Date.now(), true)
    },

    async allowance() {
      const client = hooks.redis()
      const [shared, room] = await Promise.all([
        rate &&
          gcra(client, rate.key, {
            intervalMs: rate.intervalMs,
            burst: rate.burst,
            cost: 0,
            mode: 'take',
            lookaheadMs,
          }),
        quota && rollingQuota(client, quota.key, { ...quota, cost: 0 }),
      ])
      let units = Number.POSITIVE_INFINITY
      let waitMs = 0
      if (room) {
        if (room.remaining <= 0) {
          setQuotaPaused(true, room)
          return { units: 0, waitMs: Math.max(1, room.retryAfterMs) }
        }
        setQuotaPaused(false)
        units = room.remaining
      }
      if (shared && rate) {
        units = Math.min(units, shared.soon)
        if (shared.soon <= 0) waitMs = Math.max(waitMs, shared.retryAfterMs - lookaheadMs)
        const now = Date.now()
        const pace = currentPace(now) as number
        if (pace < rate.perSecond) {
          const start = Math.max(localNextAt, now)
          const localUnits = start > now + lookaheadMs ? 0 : Math.floor((now + lookaheadMs - start) * (pace / 1000)) + 1
          units = Math.min(units, localUnits)
          if (localUnits <= 0) waitMs = Math.max(waitMs, start - lookaheadMs - now)
        }
      }
      units -= heldUnits
      // Held work is charged within moments (and `onCharged` wakes the caller sooner).
      if (units <= 0 && waitMs <= 0) waitMs = Math.min(rate ? rate.intervalMs : 50, 50)
      return { units: Math.max(0, units), waitMs: Math.max(1, Math.ceil(waitMs)) }
    },

    hold(work, units) {
      held.set(work, units)
      heldUnits += units
    },

    release,

    async charge(work, cost) {
      const abandoned: ChargeResult = { kind: 'abandoned' }
      if (cost <= 0) {
        release(work)
        return { kind: 'go' }
      }
      if (rate) {
        const now = Date.now()
        const pace = currentPace(now) as number
        if (pace < rate.perSecond) {
          // This worker's own, lowered pace comes first, so that it holds no shared units while it waits.
          const start = Math.max(localNextAt, now)
          if (start - now > maxWaitMs) {
            release(work)
            return { kind: 'delay', retryAfterMs: start - now, reason: `this worker's pace is ${pace.toFixed(2)}/s` }
          }
          localNextAt = start + (cost * 1000) / pace
          if (start > now) {
            await sleep(start - now)
            if (hooks.abandoned()) {
              release(work)
              return abandoned
            }
          }
        }
        const reserve = (units: number) => () =>
          gcra(hooks.redis(), rate.key, {
            intervalMs: rate.intervalMs,
            burst: rate.burst,
            cost: units,
            mode: 'reserve',
          })
        const reply = await retrying('charging the rate limiter failed, retrying', reserve(cost))
        release(work)
        hooks.onCharged()
        if (!reply) return abandoned
        if (reply.waitMs > maxWaitMs) {
          // Waiting this long would hold the stream entry near its visibility timeout: give the units back.
          await retrying('returning rate limiter units failed, retrying', reserve(-cost))
          return { kind: 'delay', retryAfterMs: reply.waitMs, reason: `${cost} recipients wait for the rate limit` }
        }
        if (reply.waitMs > 0) {
          await sleep(reply.waitMs)
          if (hooks.abandoned()) return abandoned
        }
      }
      if (quota) {
        // Charged last, right before the send, so that a job re-delayed above is not counted.
        const room = await retrying('charging the daily quota failed, retrying', () =>
          rollingQuota(hooks.redis(), quota.key, { ...quota, cost }),
        )
        release(work)
        if (!room) return abandoned
        if (!room.allowed) {
          if (room.remaining <= 0) setQuotaPaused(true, room)
          return {
            kind: 'delay',
            retryAfterMs: room.retryAfterMs,
            reason: `daily quota: ${room.used} of ${quota.max} recipients used, ${cost} more do not fit`,
          }
        }
        if (!rate) hooks.onCharged()
      }
      const now = Date.now()
      recent.push([now, cost])
      observedPerSecond(now)
      return { kind: 'go' }
    },

    throttled() {
      if (!rate) return
      const now = Date.now()
      // Sends in flight when the pace dropped report their throttles too: one decrease per interval.
      if (lowered && now - lowered.at < rate.aimdIntervalMs) return
      const current = currentPace(now) as number
      const observed = observedPerSecond(now)
      const base = observed === undefined ? current : Math.min(current, observed)
      const pace = Math.max(rate.minPerSecond, base * rate.decrease)
      lowered = { pace, at: now }
      reportedPace = pace
      hooks.onPace({ pace, perSecond: rate.perSecond, reason: 'throttle' })
    },

    interrupt() {
      for (const wake of [...sleepers]) wake()
    },
  }
}
