import { hostname } from 'node:os'
import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import { type Address, type AddressInput, parseAddress } from '../job.js'
import { STATUS_TTL_SECONDS } from '../keys.js'
import { type AdvertisingWorkerOptions, advertisingWorkerSchema } from '../korea/options.js'
import { parseOptions, prefixSchema, redisInputSchema } from '../options.js'
import { commandTimeoutSchema, type RedisInput } from '../redis.js'
import { type TracingOptions, tracingSchema } from '../telemetry/options.js'
import type { TemplateRendererLike, Transport } from '../transport.js'
import {
  dailyQuotaSchema,
  providerPacingSchema,
  providerRatesSchema,
  rateLimitSchema,
  type WorkerDailyQuota,
  type WorkerProviderPacing,
  type WorkerProviderRates,
  type WorkerRateLimit,
} from './pacing.js'
import { DEFAULT_MAX_THROTTLES } from './retry.js'

export interface EmailWorkerOptions {
  /** An ioredis client (never closed by the worker), ioredis options or a redis:// URL. */
  redis: RedisInput
  /** The queue's prefix. Default `email`. */
  prefix?: string
  transport: Transport
  /** Renders jobs that name a template (see `createTemplateRenderer`). */
  templates?: TemplateRendererLike
  /** Sender for jobs that do not name one. */
  from?: AddressInput
  /** Sends in flight at once in this worker. Default 10. */
  concurrency?: number
  /** An entry pending longer than this is taken over by another worker. Default 60 000. */
  visibilityTimeoutMs?: number
  /** An entry delivered more often than this (crash loop) is dead-lettered. Default 5. */
  maxDeliveries?: number
  /**
   * A send still running after this is aborted and retried later. Must be below
   * `visibilityTimeoutMs`. Default 30 000, or half of `visibilityTimeoutMs` when that is lower.
   */
  sendTimeoutMs?: number
  /**
   * Longest wait for one Redis call of the worker (a fetch, an outcome write): a frozen Redis then
   * surfaces as an `error` event and the call is retried, and `start()` returns after this at the
   * latest. Default 5000.
   */
  commandTimeoutMs?: number
  /** How long an idle worker waits on Redis for new jobs per call. Default 1000. */
  blockMs?: number
  /** Longest wait between checks for due scheduled jobs. Default 1000. */
  schedulerIntervalMs?: number
  /** Retry delay after a transient failure: `baseMs * 2^attempt`, at most `maxMs`, with ±20 % jitter. */
  backoff?: { baseMs?: number; maxMs?: number }
  /** Delay before a throttled send is tried again when the transport gives no retryAfterMs. Default 1000. */
  throttleDelayMs?: number
  /**
   * Throttles in a row one job may get (they use no attempt); the next one makes it dead with the
   * reason, so that a transport that calls every failure a throttle cannot hold a job forever. A
   * daily quota that SES reports as a throttle with an hour's wait counts too: keep it above 24. Default 50.
   */
  maxThrottles?: number
  /** How long a final status is kept. Default 86400 (24 h). */
  statusTtlSeconds?: number
  /** Consumer name in the group. Default `<host>:<pid>:<random>`. */
  consumer?: string
  /**
   * Recipients per second (to + cc + bcc), charged right before each send and shared by every
   * worker on the same prefix (GCRA in Redis). `{}` means 14 per second (SES MaxSendRate).
   * Default: no limit.
   */
  rateLimit?: WorkerRateLimit
  /** Recipients per rolling 24 h (or `windowMs`): sending pauses while the window is full. */
  dailyQuota?: WorkerDailyQuota
  /**
   * At each `start()`, run the transport's `verify()` (the SMTP connection check; each member of a
   * failover transport) in the background, within `sendTimeoutMs`: a failure is an `error` event
   * (`E_TRANSPORT`), never a failed start. Default false.
   */
  verifyTransport?: boolean
  /**
   * A rate per mailbox provider (`{ naver: '20/s', kakao: '10/s', default: '50/s' }`), charged with
   * `rateLimit` (which it needs) in one call, all or nothing. A job whose provider is out of budget
   * is parked until that provider's slot while the others keep their full rate. See
   * docs/rate-limiting.md, "Per-provider pacing". Default: none.
   */
  providerRates?: WorkerProviderRates
  /** How per-provider pacing parks jobs and slows a provider down after its replies. */
  providerPacing?: WorkerProviderPacing
  /**
   * The Korean advertising profile (docs/korea.md): the sender shown in the footer of every
   * advertising job (the built-in layout shows it with the refusal link, in Korean or English), and
   * checked, with the `(광고)` subject, before each send; a job that breaks a rule is dead, not
   * retried. Other templated jobs may not render the mark into their subject. Default: none (an
   * advertising job is dead for want of a sender).
   */
  advertising?: AdvertisingWorkerOptions
  /**
   * OpenTelemetry spans, one per attempt, linked to the job's enqueue span (see docs/operations.md).
   * Recorded when `@opentelemetry/api` is installed and an SDK is registered; `false` turns them off.
   * Default: on, without subjects (`{ recordSubject: true }` adds them).
   */
  tracing?: false | TracingOptions
}

const optionsSchema = z.strictObject({
  redis: redisInputSchema,
  prefix: prefixSchema,
  transport: z.custom<Transport>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as Transport).send === 'function' &&
      typeof (value as Transport).name === 'string',
    {
      message: 'must be a transport: an object with a name and a send(message) method',
    },
  ),
  templates: z
    .custom<TemplateRendererLike>(
      (value) =>
        typeof value === 'object' && value !== null && typeof (value as TemplateRendererLike).render === 'function',
      { message: 'must have a render(name, data) method' },
    )
    .optional(),
  from: z
    .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
      message: 'must be an email address',
    })
    .optional(),
  concurrency: z.number().int().min(1).max(10_000).default(10),
  visibilityTimeoutMs: z.number().int().min(100).default(60_000),
  maxDeliveries: z.number().int().min(1).max(1000).default(5),
  sendTimeoutMs: z.number().int().min(10).optional(),
  commandTimeoutMs: commandTimeoutSchema,
  blockMs: z.number().int().min(10).max(60_000).default(1000),
  schedulerIntervalMs: z.number().int().min(10).max(60_000).default(1000),
  backoff: z
    .strictObject({
      baseMs: z.number().int().min(1).default(1000),
      maxMs: z
        .number()
        .int()
        .min(1)
        .default(15 * 60_000),
    })
    .default({ baseMs: 1000, maxMs: 15 * 60_000 }),
  throttleDelayMs: z.number().int().min(1).default(1000),
  maxThrottles: z.number().int().min(1).default(DEFAULT_MAX_THROTTLES),
  statusTtlSeconds: z.number().int().positive().default(STATUS_TTL_SECONDS),
  consumer: z
    .string()
    .regex(/^[^\s]{1,200}$/)
    .optional(),
  rateLimit: rateLimitSchema,
  dailyQuota: dailyQuotaSchema,
  verifyTransport: z.boolean().default(false),
  providerRates: providerRatesSchema,
  providerPacing: providerPacingSchema,
  advertising: advertisingWorkerSchema.optional(),
  tracing: tracingSchema,
})

/** A send must end before another worker may take its entry over, or the job is sent twice. */
function sendTimeout(visibilityTimeoutMs: number, sendTimeoutMs: number | undefined): number {
  if (sendTimeoutMs === undefined) return Math.min(30_000, Math.floor(visibilityTimeoutMs / 2))
  if (sendTimeoutMs >= visibilityTimeoutMs) {
    throw new MailstreamError(
      'E_CONFIG',
      `createEmailWorker: sendTimeoutMs: must be below visibilityTimeoutMs (${visibilityTimeoutMs}), got ${sendTimeoutMs}: a send still running when its entry may be taken over would be sent twice`,
      { field: 'sendTimeoutMs' },
    )
  }
  return sendTimeoutMs
}

/** The worker's options once checked, with every default filled in. */
export type WorkerConfig = Omit<z.output<typeof optionsSchema>, 'from' | 'consumer' | 'sendTimeoutMs'> & {
  sendTimeoutMs: number
  consumer: string
  /** The sender for jobs that name none. */
  from: Address | undefined
}

export function parseWorkerOptions(options: EmailWorkerOptions): WorkerConfig {
  const parsed = parseOptions(optionsSchema, options, 'createEmailWorker')
  if (parsed.providerRates && Object.keys(parsed.providerRates).length > 0 && !parsed.rateLimit) {
    throw new MailstreamError(
      'E_CONFIG',
      'createEmailWorker: providerRates: needs rateLimit too (the provider rates are charged with it in one call); give rateLimit: { perSecond } at least the sum you expect',
      { field: 'providerRates' },
    )
  }
  return {
    ...parsed,
    sendTimeoutMs: sendTimeout(parsed.visibilityTimeoutMs, parsed.sendTimeoutMs),
    consumer: parsed.consumer ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
    from: parsed.from !== undefined ? (parseAddress(parsed.from) as Address) : undefined,
  }
}
