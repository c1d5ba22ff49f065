// The public shapes of the SES webhook, kept out of ses.ts so that its units can import them without a cycle.
import type { MailstreamError } from '../errors.js'
import type { SesEventKind } from '../lua/ses-event.js'
import type { EmailQueue } from '../queue/index.js'
import type { FetchCertificate } from './sns.js'

/** The kinds of SES event the handler applies (the names `lua/ses-event.lua` counts them by). */
export type SesEventType = SesEventKind

/** One SES event, normalised; what `onEvent` receives. */
export interface SesEvent {
  type: SesEventType
  /** The SNS MessageId: the same on every redelivery of one notification. */
  id: string
  /** The SES message id. */
  messageId: string
  /** The job the event belongs to (from the `job_id` tag), when it names one. */
  jobId?: string
  /** The batch (from the `batch_id` tag, or the job's status). */
  batchId?: string
  /** Recipients the event is about (bounced, complained, delivered, delayed; else every destination), lower-case. */
  recipients: string[]
  bounceType?: 'Permanent' | 'Transient' | 'Undetermined'
  bounceSubType?: string
  /** The link of a click event. */
  link?: string
  /**
   * Who made an open event: `machine` when no one read the message (no user agent, Apple Mail
   * Privacy Protection's bare `Mozilla/5.0`, a crawler or scanner), else `human`. A/B tests count
   * human opens only.
   */
  opener?: 'human' | 'machine'
  /** Addresses this event suppresses (permanent bounces and complaints), including any already on the list. */
  suppressed: string[]
  /** When it happened, epoch ms (SES's time for the event). */
  timestamp: number
  /** The SES event record as SES published it. */
  raw: Record<string, unknown>
}

/** A SubscriptionConfirmation or UnsubscribeConfirmation from SNS, after its signature was checked. */
export interface SnsSubscriptionMessage {
  type: 'SubscriptionConfirmation' | 'UnsubscribeConfirmation'
  topicArn: string
  /** Fetching this URL confirms the subscription. */
  subscribeUrl: string
  token: string
  message: string
}

export interface SesWebhookOptions {
  /** The queue whose statuses, counters and suppression list the events update. */
  queue: EmailQueue
  /** Check SNS signatures. Default true; turn off only for local experiments. */
  verifySignature?: boolean
  /**
   * Required: the SNS topics whose messages are accepted; any other gets 403. A valid signature only
   * proves that some SNS topic sent the message, and anyone can create one. `'any'` accepts every
   * topic, for local development only (and then subscriptions are not confirmed). No default.
   */
  allowedTopicArns: readonly string[] | 'any'
  /** Downloads a signing certificate (PEM). Default: `fetch` with `timeoutMs`, no redirects. */
  fetchCertificate?: FetchCertificate
  /** The fetch used for certificates and subscription confirmations. Default: global fetch. */
  fetch?: typeof fetch
  /** Called after Redis was updated, once per new SNS notification (again on redelivery while it throws). */
  onEvent?: (event: SesEvent) => void | Promise<void>
  /** Called with every verified subscription or unsubscribe confirmation. */
  onSubscription?: (subscription: SnsSubscriptionMessage) => void | Promise<void>
  /** Confirm subscriptions by fetching their SubscribeURL. Default: true, false with `allowedTopicArns: 'any'`. */
  confirmSubscriptions?: boolean
  /** Turns a `job_id` or `batch_id` tag value back into an id when the transport had to encode it. */
  decodeTagValue?: (value: string) => string
  /** How long an SNS MessageId is remembered, and how old a notification may be. Default 86400 (24 h). */
  dedupeTtlSeconds?: number
  /** How long an SES message's counted events are remembered (unique opens, ...). Default 604800 (7 days). */
  trackingTtlSeconds?: number
  /** Timeout for certificate downloads and subscription confirmations. Default 10 000 ms. */
  timeoutMs?: number
  /**
   * A `DeliveryDelay` of type `IPFailure`, `SpamDetected` or `SendingDeferral` slows down the
   * mailbox provider of its delayed recipients (naver, kakao, gmail, ...; never `other`) as an SMTP
   * 421 does in the worker: the factor the workers' `providerRates` are paced by, shared in Redis.
   * Give the workers' `rateLimit.key` when they set one, and their `providerPacing.slowDown`
   * (default the same defaults); `false`, or `slowDown: false`, turns it off.
   */
  providerPacing?:
    | false
    | {
        rateLimitKey?: string
        slowDown?:
          | false
          | { decrease?: number; minFactor?: number; step?: number; cooldownMs?: number; guardMs?: number }
      }
}

export interface SesWebhookRequest {
  /** The request body: the raw text (SNS sends JSON as text/plain), bytes, or an already parsed object. */
  body: unknown
  /** Accepted for symmetry with frameworks; the body's signed `Type` decides, not `x-amz-sns-message-type`. */
  headers?: Record<string, string | string[] | undefined> | { get(name: string): string | null }
}

export type SesWebhookOutcome =
  | 'processed'
  | 'duplicate'
  | 'ignored'
  | 'confirmed'
  | 'subscription'
  | 'unsubscribe'
  | 'rejected'
  | 'failed'

export interface SesWebhookResponse {
  status: number
  body: string
  headers: Record<string, string>
  outcome: SesWebhookOutcome
  /** Why the request was rejected (4xx) or failed (5xx), for the host's logs. */
  error?: MailstreamError
}

export interface SesWebhookHandler {
  handle(request: SesWebhookRequest): Promise<SesWebhookResponse>
}
