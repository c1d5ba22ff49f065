import { z } from 'zod'
import { describeError, MailstreamError } from '../errors.js'
import { parseOptions } from '../options.js'
import { globalLimiterKey, limiterKeySchema, slowDownSchema } from '../providers/slow-down.js'
import type { EmailQueue } from '../queue/index.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import { decodeTagValue } from '../ses-tags.js'
import { failed, readSnsMessage, reject } from './http.js'
import { createEventLocator } from './locate.js'
import { createNotificationHandler } from './notification.js'
import { createSnsVerifier, defaultFetchCertificate, type FetchCertificate } from './sns.js'
import { createSubscriptionHandler } from './subscription.js'
import type { SesWebhookHandler, SesWebhookOptions } from './types.js'

export type {
  SesEvent,
  SesEventType,
  SesWebhookHandler,
  SesWebhookOptions,
  SesWebhookOutcome,
  SesWebhookRequest,
  SesWebhookResponse,
  SnsSubscriptionMessage,
} from './types.js'

const TOPICS_REQUIRED =
  "required: list the SNS topic ARNs whose messages are accepted (or 'any', for local development only)"

const fn = <T>(message = 'must be a function') => z.custom<T>((value) => typeof value === 'function', { message })

const optionsSchema = z.strictObject({
  queue: z.custom<EmailQueue>(isEmailQueue, { message: 'must be a queue from createEmailQueue' }),
  verifySignature: z.boolean().default(true),
  allowedTopicArns: z.union(
    [
      z.literal('any'),
      z
        .array(
          z.string().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]{1,256}$/, 'must be an SNS topic ARN'),
        )
        .min(1, TOPICS_REQUIRED),
    ],
    { error: TOPICS_REQUIRED },
  ),
  fetchCertificate: fn<FetchCertificate>().optional(),
  fetch: fn<typeof fetch>().optional(),
  onEvent: fn<NonNullable<SesWebhookOptions['onEvent']>>().optional(),
  onSubscription: fn<NonNullable<SesWebhookOptions['onSubscription']>>().optional(),
  confirmSubscriptions: z.boolean().optional(),
  decodeTagValue: fn<NonNullable<SesWebhookOptions['decodeTagValue']>>().optional(),
  dedupeTtlSeconds: z.number().int().min(60).default(86_400),
  trackingTtlSeconds: z
    .number()
    .int()
    .min(60)
    .default(7 * 86_400),
  timeoutMs: z.number().int().min(1).default(10_000),
  providerPacing: z
    .union([z.literal(false), z.strictObject({ rateLimitKey: limiterKeySchema.optional(), slowDown: slowDownSchema })])
    .prefault({}),
})

/**
 * Receives SES events through an SNS HTTP(S) subscription: verifies the SNS signature, confirms
 * the subscription, and applies each notification once (job status, batch and global counters,
 * suppression of permanent bounces and complaints). Framework-agnostic: mount `handle` on a POST route.
 */
export function createSesWebhookHandler(options: SesWebhookOptions): SesWebhookHandler {
  const config = parseOptions(optionsSchema, options, 'createSesWebhookHandler')
  const anyTopic = config.allowedTopicArns === 'any'
  const confirmSubscriptions = config.confirmSubscriptions ?? !anyTopic
  if (confirmSubscriptions && anyTopic) {
    throw new MailstreamError(
      'E_CONFIG',
      "createSesWebhookHandler: confirmSubscriptions: needs a list of allowedTopicArns, not 'any', or any SNS topic could subscribe this endpoint",
      { field: 'confirmSubscriptions' },
    )
  }
  const { redis, keys, tracing } = queueInternals(config.queue)
  const fetchImpl: typeof fetch = config.fetch ?? ((...args) => globalThis.fetch(...args))
  const verifier = createSnsVerifier({
    fetchCertificate: config.fetchCertificate ?? defaultFetchCertificate(fetchImpl, config.timeoutMs),
  })
  const allowedTopics = anyTopic ? undefined : new Set(config.allowedTopicArns)
  const notifications = createNotificationHandler({
    redis,
    keys,
    // By default the encoding of mailstream's SES transport (`order:42` is tagged `order_c42`).
    locator: createEventLocator({ redis, keys, decode: config.decodeTagValue ?? decodeTagValue }),
    onEvent: config.onEvent,
    dedupeTtlSeconds: config.dedupeTtlSeconds,
    trackingTtlSeconds: config.trackingTtlSeconds,
    tracing,
    slowDown:
      config.providerPacing && config.providerPacing.slowDown !== false
        ? {
            globalKey: globalLimiterKey(keys.prefix, config.providerPacing.rateLimitKey),
            options: config.providerPacing.slowDown,
          }
        : undefined,
  })
  const subscriptions = createSubscriptionHandler({
    onSubscription: config.onSubscription,
    confirm: confirmSubscriptions,
    fetch: fetchImpl,
    timeoutMs: config.timeoutMs,
  })

  return {
    async handle(request) {
      try {
        const now = Date.now()
        const read = readSnsMessage(request)
        if ('rejected' in read) return read.rejected
        const { message } = read
        if (allowedTopics && !allowedTopics.has(message.TopicArn)) return reject(403, 'topic not allowed', 'TopicArn')
        if (config.verifySignature) {
          const verified = await verifier.verify(message, now)
          if (!verified.ok) {
            return verified.retry ? failed(verified.reason) : reject(403, `invalid signature: ${verified.reason}`)
          }
        }
        return message.Type === 'Notification'
          ? await notifications.handle(message, now)
          : await subscriptions.handle(message)
      } catch (error) {
        return failed(describeError(error), error)
      }
    },
  }
}
