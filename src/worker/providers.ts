import { z } from 'zod'
import { MailstreamError, TransportError } from '../errors.js'
import type { EmailJob } from '../job.js'
import type { ProviderCharge } from '../lua/gcra.js'
import { clusterHashTag } from '../options.js'
import { PROVIDER_NAME_RE, PROVIDERS, providerOfAddress } from '../providers/classify.js'
import { providerStateKey, sameSlotKey, slowDownProvider, slowDownSchema } from '../providers/slow-down.js'
import { dayKey, nextDayStart, startDayKey, WARMUP_SCHEDULES, type WarmupScheduleName } from '../providers/warmup.js'
import type { RedisClient } from '../redis.js'
import type { EmailMessage } from '../transport.js'
import { isTimeZone } from '../zoned-time.js'

/** One provider's rate: recipients per second, `'20/s'`, `'600/m'`, `'3600/h'`, or `{ perSecond, burst }`. */
export type ProviderRate = number | `${number}/${'s' | 'm' | 'h'}` | { perSecond: number; burst?: number }

/**
 * The worker's `providerRates` option: a rate per mailbox provider (`naver`, `kakao`, `gmail`,
 * `nate`, `outlook`, `icloud`, `yahoo`, `other`), and `default` for every known provider not
 * named. `other` (domains mailstream does not know) is limited only when named.
 */
export type WorkerProviderRates = Record<string, ProviderRate>

/** The worker's `providerPacing` option: how jobs of a provider out of budget wait, and the slow-down. */
export interface WorkerProviderPacing {
  /**
   * A provider wait up to this is waited out in the worker, holding a concurrency slot (and the
   * job's global units, taken at their own slot, so that sends may bunch by up to this); a longer
   * one parks the job. Default 50.
   */
  parkAfterMs?: number
  /**
   * Provider units are reserved at most this far ahead; a job of a provider booked further ahead is
   * re-delayed without a reservation. Bounds how long a later high-priority job of that provider
   * waits behind parked ones. Default 60 000.
   */
  horizonMs?: number
  /**
   * A parked job back within this of its slot goes on the units reserved for it; one back later
   * (behind a long stream, say) is charged anew, so that late jobs cannot bunch with the slots after
   * theirs: over any window W a provider gets at most burst + (W + lateMs) * rate. Default 100.
   */
  lateMs?: number
  /**
   * After an SMTP 421/451 reply that speaks of a rate (or of too many messages) for a job of a
   * provider, that provider's rate is multiplied by `decrease` (at most once per `guardMs`, never
   * below `minFactor`), then raised by `step` per `cooldownMs` back to full. Shared by every worker
   * through Redis. `false` turns it off. Defaults 0.5, 0.05, 0.1, 60 000, 5000.
   */
  slowDown?: false | { decrease?: number; minFactor?: number; step?: number; cooldownMs?: number; guardMs?: number }
  /**
   * Warm-up of a new sending domain: a daily cap per provider (each provider with a rate) that
   * grows by `schedule` (`conservative`, `moderate`, or your own caps, day 1 first) from `startDate`,
   * counted in sending days (a day without a send to that provider does not count; 30 days without
   * one start it over), days as `timeZone` counts them. A job over today's cap waits for the next
   * day. Jobs of `exemptTypes` (not in a batch, not advertising) are exempt: transactional mail.
   * Default: none.
   */
  warmup?: {
    startDate: string
    schedule: WarmupScheduleName | number[]
    /** Default `Asia/Seoul`. */
    timeZone?: string
    /** Default the built-in transactional types: verification-code, subscription-confirm, subscription-cancel, welcome. */
    exemptTypes?: string[]
  }
}

/** The `providerPace` worker event: a provider's rate changed (slowed down, or raised back). */
export interface ProviderPaceEvent {
  provider: string
  /** Its rate now, recipients per second. */
  perSecond: number
  /** Its configured rate. */
  fullPerSecond: number
  /** `perSecond / fullPerSecond`. */
  factor: number
  reason: 'slow-down' | 'recover'
}

const RATE_TEXT_RE = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|m|h)\s*$/
const PER = { s: 1, m: 60, h: 3600 } as const

const rateSchema = z
  .union([
    z.number().positive().max(1_000_000),
    z.string().regex(RATE_TEXT_RE, "must be a rate such as '20/s', '600/m' or '3600/h'"),
    z.strictObject({
      perSecond: z.number().positive().max(1_000_000),
      burst: z.number().int().min(1).max(1_000_000).optional(),
    }),
  ])
  .transform((rate, ctx) => {
    let perSecond: number
    let burst = 1
    if (typeof rate === 'number') perSecond = rate
    else if (typeof rate === 'string') {
      const [, count = '0', unit = 's'] = RATE_TEXT_RE.exec(rate) ?? []
      perSecond = Number(count) / PER[unit as keyof typeof PER]
    } else {
      perSecond = rate.perSecond
      burst = rate.burst ?? 1
    }
    if (!(perSecond > 0)) {
      ctx.addIssue({ code: 'custom', message: 'must be above 0' })
      return z.NEVER
    }
    return { perSecond, burst }
  })

export const providerRatesSchema = z
  .record(
    z.string().refine((name) => name === 'default' || PROVIDER_NAME_RE.test(name), {
      message: 'provider names are 1-32 characters of a-z 0-9 _ -, or default',
    }),
    rateSchema,
  )
  .optional()

export const providerPacingSchema = z
  .strictObject({
    parkAfterMs: z.number().int().min(0).max(60_000).default(50),
    horizonMs: z
      .number()
      .int()
      .min(100)
      .max(24 * 3_600_000)
      .default(60_000),
    lateMs: z.number().int().min(0).max(3_600_000).default(100),
    slowDown: slowDownSchema,
    warmup: z
      .strictObject({
        startDate: z
          .string()
          .regex(/^\d{4}-\d{2}-\d{2}$/, 'must be a date as YYYY-MM-DD')
          .refine((date) => !Number.isNaN(Date.parse(`${date}T00:00:00Z`)), { message: 'must be a valid date' }),
        schedule: z.union(
          [z.enum(['conservative', 'moderate']), z.array(z.number().int().min(1).max(100_000_000)).min(1).max(366)],
          { message: "must be 'conservative', 'moderate' or an array of daily caps (whole numbers, day 1 first)" },
        ),
        timeZone: z
          .string()
          .refine((zone) => isTimeZone(zone), { message: 'must be an IANA time zone such as Asia/Seoul' })
          .default('Asia/Seoul'),
        exemptTypes: z
          .array(z.string())
          .max(100)
          .default(['verification-code', 'subscription-confirm', 'subscription-cancel', 'welcome']),
      })
      .optional(),
  })
  .prefault({})

export { sameSlotKey }

/** An SMTP reply that says a provider wants less: 421/451 speaking of a rate, a throttle or too much. */
const SLOW_WORDS_RE = /\brate\b|throttl|too many|too much|temporar(?:il)?y (?:deferred|limited)|try again later/i

export function isProviderSlowDown(error: unknown): boolean {
  if (!(error instanceof TransportError)) return false
  const code = Number(error.statusCode)
  return (code === 421 || code === 451) && SLOW_WORDS_RE.test(error.message)
}

export interface ProviderHooks {
  redis(): RedisClient
  onProviderPace(event: ProviderPaceEvent): void
  onError(error: unknown, what: string): void
}

/**
 * The worker's per-provider pacing: which providers a job is charged to, their limiter keys (in the
 * global limiter's slot), and their shared slow-down.
 */
export function createProviders(
  globalKey: string,
  rates: NonNullable<z.output<typeof providerRatesSchema>>,
  options: z.output<typeof providerPacingSchema>,
  hooks: ProviderHooks,
) {
  if (clusterHashTag(globalKey) === null && globalKey.includes('}')) {
    throw new MailstreamError(
      'E_CONFIG',
      "createEmailWorker: rateLimit.key: with providerRates the key may not hold a '}' outside a hash tag (the provider keys must share its Cluster slot)",
      { field: 'rateLimit.key' },
    )
  }
  const fallback = rates.default
  const known = new Set<string>(PROVIDERS.filter((name) => name !== 'other'))
  const slow = options.slowDown === false ? undefined : options.slowDown
  const step = slow?.step ?? 1
  const cooldownMs = slow?.cooldownMs ?? 60_000
  /** The last factor seen per provider, for the `providerPace` events. */
  const factors = new Map<string, number>()

  function rateOf(provider: string) {
    return rates[provider] ?? (known.has(provider) ? fallback : undefined)
  }

  const warmup = options.warmup && {
    ...options.warmup,
    caps:
      typeof options.warmup.schedule === 'string' ? WARMUP_SCHEDULES[options.warmup.schedule] : options.warmup.schedule,
    start: startDayKey(options.warmup.startDate),
    exempt: new Set(options.warmup.exemptTypes),
  }
  const keyOf = (provider: string) => sameSlotKey(globalKey, `:provider:${provider}`)
  const warmKeyOf = (provider: string) => sameSlotKey(globalKey, `:provider:${provider}:warmup`)
  const stateKeyOf = (provider: string) => providerStateKey(globalKey, provider)

  /** The rate of each provider as a `providerPace` event says it. */
  function event(provider: string, factor: number, reason: ProviderPaceEvent['reason']): ProviderPaceEvent {
    const full = rateOf(provider)?.perSecond ?? 0
    return { provider, perSecond: full * factor, fullPerSecond: full, factor, reason }
  }

  return {
    parkAfterMs: options.parkAfterMs,
    /** When a job over today's warm-up cap may try again: the next day, spread over its first 10 minutes. */
    nextWarmupDay(now = Date.now()): number {
      const zone = warmup?.timeZone ?? 'UTC'
      return nextDayStart(now, zone) - now + Math.floor(Math.random() * 600_000)
    },
    horizonMs: options.horizonMs,
    lateMs: options.lateMs,

    /**
     * The provider charges of a message: its recipients per provider that has a rate. The job's
     * stored counts when nothing was suppressed (they may come from an MX lookup at enqueue), else
     * the message's recipients by the built-in map.
     */
    charges(job: EmailJob, message: EmailMessage, suppressed: number, now = Date.now()): ProviderCharge[] {
      // Transactional mail is exempt from the warm-up: never a batch job, never advertising.
      const exempt =
        !warmup || (warmup.exempt.has(job.type) && job.batchId === undefined && job.advertising === undefined)
      const today = warmup && !exempt ? dayKey(now, warmup.timeZone) : undefined
      const warm =
        warmup && today !== undefined ? { today, counting: today >= warmup.start, caps: warmup.caps } : undefined
      let counts: Record<string, number> | undefined
      const stored = job.providers
      if (suppressed === 0 && typeof stored === 'object' && stored !== null && !Array.isArray(stored)) counts = stored
      else {
        counts = {}
        for (const list of [message.to, message.cc, message.bcc]) {
          for (const address of list ?? []) {
            const provider = providerOfAddress(address.address)
            counts[provider] = (counts[provider] ?? 0) + 1
          }
        }
      }
      const charges: ProviderCharge[] = []
      for (const [provider, count] of Object.entries(counts)) {
        const rate = rateOf(provider)
        if (!rate || !Number.isInteger(count) || count <= 0 || !PROVIDER_NAME_RE.test(provider)) continue
        charges.push({
          provider,
          key: keyOf(provider),
          stateKey: stateKeyOf(provider),
          warmKey: warmKeyOf(provider),
          ...(warm && { warmup: warm }),
          intervalMs: 1000 / rate.perSecond,
          burst: rate.burst,
          cost: count,
          step,
          cooldownMs,
        })
      }
      return charges
    },

    /** True when the slow-down is on and `error` is a reply it slows a provider down for. */
    slowsDown(error: unknown): boolean {
      return slow !== undefined && isProviderSlowDown(error)
    },

    /** The factors a `pace` call saw: a provider raised back since the last one gets a `recover` event. */
    observed(charges: readonly ProviderCharge[], seen: readonly number[]): void {
      charges.forEach((charge, index) => {
        const factor = seen[index]
        if (factor === undefined || !Number.isFinite(factor)) return
        const last = factors.get(charge.provider) ?? 1
        if (factor === last) return
        factors.set(charge.provider, factor)
        if (factor > last) hooks.onProviderPace(event(charge.provider, factor, 'recover'))
      })
    },

    /**
     * A reply of the transport for a job charged to these providers: slow them down when it says
     * so. The providers it slowed down (none when another worker did it moments ago).
     */
    async replied(charges: readonly ProviderCharge[], error: unknown): Promise<string[]> {
      const slowed: string[] = []
      if (!slow || charges.length === 0 || !isProviderSlowDown(error)) return slowed
      for (const charge of charges) {
        try {
          const { decreased, factor } = await slowDownProvider(hooks.redis(), globalKey, charge.provider, slow)
          if (!decreased) continue
          slowed.push(charge.provider)
          factors.set(charge.provider, factor)
          hooks.onProviderPace(event(charge.provider, factor, 'slow-down'))
        } catch (cause) {
          hooks.onError(cause, `slowing down provider ${charge.provider} failed`)
        }
      }
      return slowed
    },
  }
}

export type Providers = ReturnType<typeof createProviders>
