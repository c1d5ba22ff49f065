import { z } from 'zod'
import { describeError, MailstreamError } from '../errors.js'
import { ID_RE, parseAddress } from '../job.js'
import { sesEvent } from '../lua/ses-event.js'
import { parseOptions } from '../options.js'
import type { EmailQueue } from '../queue/index.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import { decodeTagValue } from '../transport.js'
import {
  confirmSubscription,
  createSnsVerifier,
  defaultFetchCertificate,
  type FetchCertificate,
  isSnsSubscribeUrl,
  type SnsMessage,
  toSnsMessage,
} from './sns.js'

export type SesEventType =
  | 'send'
  | 'delivery'
  | 'bounce'
  | 'complaint'
  | 'reject'
  | 'open'
  | 'click'
  | 'renderingFailure'
  | 'deliveryDelay'

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
})

const EVENT_TYPES: Record<string, SesEventType> = {
  Send: 'send',
  Delivery: 'delivery',
  Bounce: 'bounce',
  Complaint: 'complaint',
  Reject: 'reject',
  Open: 'open',
  Click: 'click',
  'Rendering Failure': 'renderingFailure',
  RenderingFailure: 'renderingFailure',
  DeliveryDelay: 'deliveryDelay',
}
/** The object of an event record that carries its details, by type. */
const DETAIL: Record<SesEventType, string> = {
  send: 'send',
  delivery: 'delivery',
  bounce: 'bounce',
  complaint: 'complaint',
  reject: 'reject',
  open: 'open',
  click: 'click',
  renderingFailure: 'failure',
  deliveryDelay: 'deliveryDelay',
}
const BOUNCE_TYPES = ['Permanent', 'Transient', 'Undetermined'] as const
const SES_MESSAGE_ID_RE = /^[^\s\u0000-\u001f]{1,256}$/
const MAX_BODY_BYTES = 1024 * 1024
const TEXT = { 'content-type': 'text/plain; charset=utf-8' }

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

function respond(
  status: number,
  outcome: SesWebhookOutcome,
  body: string,
  error?: MailstreamError,
): SesWebhookResponse {
  return error ? { status, body, headers: TEXT, outcome, error } : { status, body, headers: TEXT, outcome }
}

function reject(status: number, reason: string, field?: string): SesWebhookResponse {
  const error = new MailstreamError('E_WEBHOOK', `ses webhook: ${reason}`, field === undefined ? {} : { field })
  return respond(status, 'rejected', reason, error)
}

function failed(reason: string, cause?: unknown): SesWebhookResponse {
  return respond(500, 'failed', reason, new MailstreamError('E_WEBHOOK', `ses webhook: ${reason}`, { cause }))
}

/** The body as a parsed value, or why it cannot be one. */
function parseBody(body: unknown): { value: unknown } | 'invalid' | 'too large' {
  let text: string
  if (typeof body === 'string') text = body
  else if (body instanceof Uint8Array)
    text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
  else if (body instanceof ArrayBuffer) text = Buffer.from(body).toString('utf8')
  else return { value: body }
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) return 'too large'
  try {
    return { value: JSON.parse(text) }
  } catch {
    return 'invalid'
  }
}

function addressList(values: unknown): string[] {
  const out = new Set<string>()
  if (!Array.isArray(values)) return []
  for (const value of values) {
    const raw = isObject(value) ? value.emailAddress : value
    const address = typeof raw === 'string' ? parseAddress(raw)?.address : undefined
    if (address) out.add(address.toLowerCase())
  }
  return [...out]
}

function tagValue(tags: unknown, name: string): string | undefined {
  if (!isObject(tags)) return undefined
  const value = tags[name]
  const first = Array.isArray(value) ? value[0] : value
  return typeof first === 'string' && first.length > 0 && first.length <= 256 ? first : undefined
}

interface ParsedEvent {
  type: SesEventType
  messageId: string
  recipients: string[]
  bounceType?: (typeof BOUNCE_TYPES)[number]
  bounceSubType?: string
  complaintType?: string
  link?: string
  timestamp: number
  jobTag?: string
  batchTag?: string
  raw: Json
}

/** Reads an SES event record (configuration-set `eventType` or identity `notificationType`). */
function parseSesEvent(message: string, now: number): ParsedEvent | undefined {
  let record: unknown
  try {
    record = JSON.parse(message)
  } catch {
    return undefined
  }
  if (!isObject(record) || !isObject(record.mail)) return undefined
  const type = EVENT_TYPES[asString(record.eventType) ?? asString(record.notificationType) ?? '']
  const messageId = asString(record.mail.messageId)
  if (!type || !messageId || !SES_MESSAGE_ID_RE.test(messageId)) return undefined
  const detail = isObject(record[DETAIL[type]]) ? (record[DETAIL[type]] as Json) : {}
  let recipients: string[]
  if (type === 'bounce') recipients = addressList(detail.bouncedRecipients)
  else if (type === 'complaint') recipients = addressList(detail.complainedRecipients)
  else if (type === 'deliveryDelay') recipients = addressList(detail.delayedRecipients)
  else if (type === 'delivery') recipients = addressList(detail.recipients)
  else recipients = addressList(record.mail.destination)
  const time = Date.parse(asString(detail.timestamp) ?? asString(record.mail.timestamp) ?? '')
  const event: ParsedEvent = {
    type,
    messageId,
    recipients,
    timestamp: Number.isFinite(time) ? time : now,
    raw: record,
  }
  if (type === 'bounce') {
    const bounceType = asString(detail.bounceType)
    event.bounceType = BOUNCE_TYPES.find((known) => known === bounceType) ?? 'Undetermined'
    const subType = asString(detail.bounceSubType)
    if (subType) event.bounceSubType = subType
  }
  const complaintType = asString(detail.complaintFeedbackType)
  if (type === 'complaint' && complaintType) event.complaintType = complaintType
  const link = asString(detail.link)
  if (type === 'click' && link) event.link = link
  const jobTag = tagValue(record.mail.tags, 'job_id')
  const batchTag = tagValue(record.mail.tags, 'batch_id')
  if (jobTag) event.jobTag = jobTag
  if (batchTag) event.batchTag = batchTag
  return event
}

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
  const { redis, keys } = queueInternals(config.queue)
  const fetchImpl: typeof fetch = config.fetch ?? ((...args) => globalThis.fetch(...args))
  const verifier = createSnsVerifier({
    fetchCertificate: config.fetchCertificate ?? defaultFetchCertificate(fetchImpl, config.timeoutMs),
  })
  const allowedTopics = anyTopic ? undefined : new Set(config.allowedTopicArns)
  // By default the encoding of mailstream's SES transport (`order:42` is tagged `order_c42`).
  const decode = config.decodeTagValue ?? decodeTagValue

  /** The tag value itself first, then its decoded form: ids that could name a job or batch. */
  function candidates(tag: string | undefined): string[] {
    if (tag === undefined) return []
    let decoded: string | undefined
    try {
      decoded = decode(tag)
    } catch {
      decoded = undefined
    }
    return [...new Set([tag, decoded])].filter((id): id is string => typeof id === 'string' && ID_RE.test(id))
  }

  /** Finds the job and batch an event names. A job whose status expired is left alone. */
  async function locate(event: ParsedEvent): Promise<{ jobId?: string; batchId?: string; found: boolean }> {
    const jobIds = candidates(event.jobTag)
    const batchIds = candidates(event.batchTag)
    if (jobIds.length === 0 && batchIds.length === 0) return { found: false }
    const pipeline = redis.pipeline()
    for (const id of jobIds) pipeline.hmget(keys.status(id), 'status', 'batch')
    for (const id of batchIds) pipeline.exists(keys.batch(id))
    const replies = (await pipeline.exec()) ?? []
    for (const [error] of replies) if (error) throw error
    const states = replies.slice(0, jobIds.length).map(([, reply]) => reply as (string | null)[])
    const batchFound = replies.slice(jobIds.length).map(([, reply]) => reply === 1)
    const jobIndex = states.findIndex((state) => state[0] !== null)
    const batchIndex = batchFound.indexOf(true)
    // Nothing in Redis to tell which form is right: the decoded one, as the SES transport encodes.
    const pick = (ids: string[]) => ids[1] ?? ids[0]
    const jobId = jobIndex >= 0 ? jobIds[jobIndex] : pick(jobIds)
    const batchId = batchIndex >= 0 ? batchIds[batchIndex] : (states[jobIndex]?.[1] ?? pick(batchIds))
    const out: { jobId?: string; batchId?: string; found: boolean } = { found: jobIndex >= 0 }
    if (jobId !== undefined) out.jobId = jobId
    if (batchId) out.batchId = batchId
    return out
  }

  function suppressionsOf(event: ParsedEvent, now: number): [address: string, entry: string][] {
    let reason: string | undefined
    if (event.type === 'bounce' && event.bounceType === 'Permanent') {
      reason = `bounce (Permanent${event.bounceSubType ? `/${event.bounceSubType}` : ''})`
    } else if (event.type === 'complaint') {
      reason = event.complaintType ? `complaint (${event.complaintType})` : 'complaint'
    }
    if (!reason) return []
    const entry = JSON.stringify({ reason, at: now })
    return event.recipients.map((address) => [address, entry])
  }

  async function runHook(event: SesEvent): Promise<SesWebhookResponse | undefined> {
    if (!config.onEvent) return undefined
    try {
      await config.onEvent(event)
    } catch (error) {
      // The dedupe key stays at 'hook': SNS's redelivery calls onEvent again without counting twice.
      return failed(`onEvent failed: ${describeError(error)}`, error)
    }
    await redis.set(keys.sns(event.id), 'done', 'KEEPTTL', 'XX')
    return undefined
  }

  async function notification(message: SnsMessage, now: number): Promise<SesWebhookResponse> {
    const sentAt = Date.parse(message.Timestamp)
    if (!Number.isFinite(sentAt)) return reject(400, 'Timestamp is not a date', 'Timestamp')
    // Older than the dedupe memory: a replay could count twice, and SNS stops retrying long before.
    if (now - sentAt > config.dedupeTtlSeconds * 1000) return reject(403, 'notification is too old', 'Timestamp')
    const parsed = parseSesEvent(message.Message, now)
    if (!parsed) return respond(200, 'ignored', 'ignored: not an SES event')
    const { jobId, batchId, found } = await locate(parsed)
    const suppressions = suppressionsOf(parsed, now)
    const applied = await sesEvent(redis, keys, {
      snsMessageId: message.MessageId,
      sesMessageId: parsed.messageId,
      jobId: found ? jobId : undefined,
      batchId,
      dedupeTtlSeconds: config.dedupeTtlSeconds,
      trackingTtlSeconds: config.trackingTtlSeconds,
      hookPending: config.onEvent !== undefined,
      kind: parsed.type,
      bounceType: parsed.bounceType,
      at: parsed.timestamp,
      suppress: suppressions,
    })
    const event: SesEvent = {
      type: parsed.type,
      id: message.MessageId,
      messageId: parsed.messageId,
      recipients: parsed.recipients,
      suppressed: suppressions.map(([address]) => address),
      timestamp: parsed.timestamp,
      raw: parsed.raw,
    }
    if (jobId !== undefined) event.jobId = jobId
    if (batchId !== undefined) event.batchId = batchId
    if (parsed.bounceType) event.bounceType = parsed.bounceType
    if (parsed.bounceSubType) event.bounceSubType = parsed.bounceSubType
    if (parsed.link) event.link = parsed.link
    if (applied.state === 'duplicate') {
      // Applied before; its onEvent had not succeeded yet, so give the host another go.
      if (applied.previous === 'hook') return (await runHook(event)) ?? respond(200, 'duplicate', 'duplicate')
      return respond(200, 'duplicate', 'duplicate')
    }
    return (await runHook(event)) ?? respond(200, 'processed', 'ok')
  }

  async function subscription(message: SnsMessage): Promise<SesWebhookResponse> {
    const type = message.Type as SnsSubscriptionMessage['type']
    if (config.onSubscription) {
      await config.onSubscription({
        type,
        topicArn: message.TopicArn,
        subscribeUrl: message.SubscribeURL as string,
        token: message.Token as string,
        message: message.Message,
      })
    }
    if (type === 'UnsubscribeConfirmation') return respond(200, 'unsubscribe', 'ok')
    if (!confirmSubscriptions) return respond(200, 'subscription', 'subscription received, not confirmed')
    if (!isSnsSubscribeUrl(message.SubscribeURL, message.TopicArn)) {
      return reject(403, 'SubscribeURL is not an SNS ConfirmSubscription URL for the topic', 'SubscribeURL')
    }
    try {
      await confirmSubscription(fetchImpl, message.SubscribeURL, message.TopicArn, config.timeoutMs)
    } catch (error) {
      return failed(`confirming the subscription failed: ${describeError(error)}`, error)
    }
    return respond(200, 'confirmed', 'confirmed')
  }

  return {
    async handle(request) {
      try {
        const now = Date.now()
        const body = parseBody(request?.body)
        if (body === 'too large') return reject(413, 'body is too large')
        if (body === 'invalid') return reject(400, 'body is not valid JSON')
        const message = toSnsMessage(body.value)
        if (typeof message === 'string') return reject(400, message)
        if (allowedTopics && !allowedTopics.has(message.TopicArn)) return reject(403, 'topic not allowed', 'TopicArn')
        if (config.verifySignature) {
          const verified = await verifier.verify(message, now)
          if (!verified.ok) {
            return verified.retry ? failed(verified.reason) : reject(403, `invalid signature: ${verified.reason}`)
          }
        }
        return message.Type === 'Notification' ? await notification(message, now) : await subscription(message)
      } catch (error) {
        return failed(describeError(error), error)
      }
    },
  }
}
