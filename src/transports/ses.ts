import {
  GetAccountCommand,
  type MessageTag,
  SESv2Client,
  type SESv2ClientConfig,
  SendEmailCommand,
  type SendEmailCommandInput,
} from '@aws-sdk/client-sesv2'
import { z } from 'zod'
import { MailstreamError, TransportError, type TransportErrorOptions } from '../errors.js'
import { type Address, type AddressInput, formatAddress, parseAddress, TAG_RE } from '../job.js'
import { parseOptions } from '../options.js'
import { encodeTagValue } from '../ses-tags.js'
import { type EmailMessage, type SendContext, type SendResult, senderOf, type Transport } from '../transport.js'
import { composeMime } from './mime.js'

export { decodeTagValue, encodeTagValue } from '../ses-tags.js'

export interface SesTransportOptions {
  /**
   * Your own client. It keeps its own retry settings: create it with `maxAttempts: 1`, as the
   * queue retries and an SDK retry would hide throttles from it. Never closed by the transport.
   */
  client?: SESv2Client
  /** Region of the client the transport creates (with `maxAttempts: 1`) when no `client` is given. */
  region?: string
  /** More settings for the client the transport creates (credentials, endpoint, ...); `maxAttempts` is always 1. */
  clientConfig?: SESv2ClientConfig
  /** Sender for messages that name none. */
  from?: AddressInput
  /** SES configuration set that publishes the events (deliveries, bounces, complaints). */
  configurationSetName?: string
  /** Tags on every message, beside the message's own tags and `job_id`, `batch_id` and `type`. */
  tags?: Record<string, string>
  /**
   * Where SES forwards bounces and complaints when no configuration set publishes them (SendEmail
   * `FeedbackForwardingEmailAddress`). Without either, they go to the From address, often a
   * no-reply box nobody reads.
   */
  feedbackForwardingEmailAddress?: string
  /** ARN of the identity that authorises the From address (sending authorisation, another account's identity). */
  fromEmailAddressIdentityArn?: string
  /** ARN of the identity that authorises `feedbackForwardingEmailAddress`. */
  feedbackForwardingEmailAddressIdentityArn?: string
  /** How long a job waits after SES says the daily quota is used up. Default 1 hour. */
  quotaRetryAfterMs?: number
  /** Default `ses`. */
  name?: string
}

/** The account's sending limits, from SES GetAccount. */
export interface SendQuota {
  /** Messages (recipients, in fact) per second. */
  maxSendRate: number
  max24HourSend: number
  sentLast24Hours: number
}

export interface SesTransport extends Transport {
  /** The SES client in use: yours, or the one the transport created. */
  readonly client: SESv2Client
  /** Reads the account's quota (GetAccount), for example to set the worker's rate limit to MaxSendRate. */
  getSendQuota(options?: { signal?: AbortSignal }): Promise<SendQuota>
  /** Destroys the client if the transport created it. */
  close(): Promise<void>
}

/** Tag names mailstream sets itself: the webhook handler reads `job_id` and `batch_id` back from SES events. */
export const SES_RESERVED_TAGS = ['job_id', 'batch_id', 'type'] as const
const RESERVED = new Set<string>(SES_RESERVED_TAGS)

const identityArn = z
  .string()
  .regex(
    /^arn:aws[a-z-]*:ses:[a-z0-9-]{1,40}:\d{12}:identity\/[^\s/]{1,320}$/,
    'must be an SES identity ARN like arn:aws:ses:eu-west-1:123456789012:identity/example.com',
  )

const optionsSchema = z
  .strictObject({
    client: z
      .custom<SESv2Client>(
        (value) => typeof value === 'object' && value !== null && typeof (value as SESv2Client).send === 'function',
        { message: 'must be an SESv2Client from @aws-sdk/client-sesv2' },
      )
      .optional(),
    region: z
      .string()
      .regex(/^[a-z0-9-]{1,40}$/, 'must be an AWS region such as eu-west-1')
      .optional(),
    clientConfig: z
      .custom<SESv2ClientConfig>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), {
        message: 'must be an SESv2Client configuration object',
      })
      .optional(),
    from: z
      .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
        message: 'must be an email address like a@example.com or "Name <a@example.com>"',
      })
      .optional(),
    configurationSetName: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 characters of A-Z a-z 0-9 _ -')
      .optional(),
    tags: z
      .record(
        z
          .string()
          .regex(TAG_RE, 'tag names are 1-256 characters of A-Z a-z 0-9 _ -')
          .refine((name) => !RESERVED.has(name), { message: 'job_id, batch_id and type are set by mailstream' }),
        z.string().regex(TAG_RE, 'tag values are 1-256 characters of A-Z a-z 0-9 _ -'),
      )
      .optional(),
    feedbackForwardingEmailAddress: z
      .string()
      .refine((value) => parseAddress(value)?.name === undefined && parseAddress(value) !== null, {
        message: 'must be a bare email address like bounces@example.com',
      })
      .optional(),
    fromEmailAddressIdentityArn: identityArn.optional(),
    feedbackForwardingEmailAddressIdentityArn: identityArn.optional(),
    quotaRetryAfterMs: z.number().int().min(1).default(3_600_000),
    name: z.string().min(1).max(100).default('ses'),
  })
  .superRefine((options, ctx) => {
    if (options.client && (options.region !== undefined || options.clientConfig !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['client'],
        message: 'give either client, or region/clientConfig for a client the transport creates',
      })
    }
  })

const PREFIX = '[mailstream] [ses]'
// LimitExceededException is not here: SESv2 means a resource limit by it (too many of some
// resource), which waiting without an attempt never lifts; as a 400 it is never.
const THROTTLE = new Set(['TooManyRequestsException', 'ThrottlingException', 'Throttling'])
/**
 * The account cannot send, or nothing it sends this way can succeed (a MAIL FROM domain that is
 * not verified, a configuration set or identity that does not exist): every queued job would
 * fail the same way, so the worker pauses with the reason instead of dead-lettering them all.
 */
const PAUSE = new Set([
  'SendingPausedException',
  'AccountSuspendedException',
  'MailFromDomainNotVerifiedException',
  'NotFoundException',
])
const NEVER = new Set(['MessageRejected', 'BadRequestException', 'LimitExceededException'])
/** Credentials and permissions: not the message's fault, and they may be fixed while the job waits. */
const ACCESS = new Set([
  'AccessDeniedException',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
  'IncompleteSignature',
  'ExpiredTokenException',
  'ExpiredToken',
])
const GENERIC_NAMES = new Set(['Error', 'Unknown', 'UnknownError', 'SESv2ServiceException'])

interface SdkError {
  name?: string
  message?: string
  code?: string
  $fault?: 'client' | 'server'
  $metadata?: { httpStatusCode?: number }
}

/** Maps an SES or network error to the queue's retry classes (see docs/transports.md). */
function toTransportError(error: unknown, signal: AbortSignal | undefined, quotaRetryAfterMs: number): TransportError {
  if (error instanceof TransportError) return error
  if (error instanceof MailstreamError) {
    // A problem on this side (nodemailer missing for a raw message): retrying cannot help.
    return new TransportError(`${PREFIX} ${error.message.replace(/^\[mailstream\]\s*/, '')}`, {
      retry: 'never',
      statusCode: error.code,
      cause: error,
    })
  }
  const sdk = (typeof error === 'object' && error !== null ? error : {}) as SdkError
  const name = sdk.name ?? 'Error'
  const text = sdk.message ?? String(error)
  const status = sdk.$metadata?.httpStatusCode
  const modeled = sdk.$fault !== undefined && !GENERIC_NAMES.has(name)
  const statusCode = modeled ? name : (status ?? sdk.code ?? name)
  const describe = `${PREFIX} ${name}: ${text}${status !== undefined ? ` (HTTP ${status})` : ''}`
  const fail = (retry: TransportErrorOptions['retry'], extra: Partial<TransportErrorOptions> = {}) =>
    new TransportError(describe, { retry, statusCode, cause: error, ...extra })

  if (signal?.aborted || name === 'AbortError') {
    return new TransportError(`${PREFIX} send aborted: ${text}`, {
      retry: 'later',
      statusCode: 'AbortError',
      cause: error,
    })
  }
  if (/daily message quota exceeded/i.test(text)) return fail('throttle', { retryAfterMs: quotaRetryAfterMs })
  if (THROTTLE.has(name) || status === 429 || /maximum sending rate exceeded/i.test(text)) return fail('throttle')
  if (PAUSE.has(name)) return fail('never', { pause: true })
  if (NEVER.has(name)) return fail('never')
  if ((status !== undefined && status >= 500) || sdk.$fault === 'server') return fail('later')
  if (ACCESS.has(name) || status === 401 || status === 403) return fail('later')
  if (status !== undefined && status >= 400) return fail('never')
  // Network errors, timeouts, credential lookups: transient as far as anyone can tell.
  return fail('later')
}

/** RFC 2047 encoded words of at most 75 characters, split between characters. */
function encodedWords(text: string): string {
  const words: string[] = []
  let chunk = ''
  for (const char of text) {
    if (chunk && Buffer.byteLength(chunk + char) > 45) {
      words.push(chunk)
      chunk = ''
    }
    chunk += char
  }
  if (chunk) words.push(chunk)
  return words.map((word) => `=?UTF-8?B?${Buffer.from(word).toString('base64')}?=`).join(' ')
}

/** SES wants non-ASCII display names in address fields as MIME encoded words. */
function sesAddress(address: Address): string {
  if (!address.name) return address.address
  if (/^[\x20-\x7e]*$/.test(address.name)) return formatAddress(address)
  return `${encodedWords(address.name)} <${address.address}>`
}

/** What SES accepts in Simple `Headers`: printable ASCII values of at most 995 characters, name and value at most 996. */
const SIMPLE_VALUE_MAX = 995
const SIMPLE_HEADER_MAX = 996
const PRINTABLE_RE = /^[\x20-\x7e]*$/

/**
 * The headers as SES Simple content takes them: a non-ASCII value as RFC 2047 encoded words, as
 * nodemailer writes it over SMTP. Undefined when one does not fit even so (a long List-Unsubscribe
 * with two links, a long non-ASCII value): the message then goes as Raw MIME, where nodemailer
 * folds long header lines, so a job that works over SMTP works on SES as well.
 */
function simpleHeaders(headers: Record<string, string>): { Name: string; Value: string }[] | undefined {
  const out: { Name: string; Value: string }[] = []
  for (const [Name, value] of Object.entries(headers)) {
    const flat = value.replace(/\t/g, ' ')
    const Value = PRINTABLE_RE.test(flat) ? flat : encodedWords(flat)
    if (Value.length > SIMPLE_VALUE_MAX || Name.length + Value.length > SIMPLE_HEADER_MAX) return undefined
    out.push({ Name, Value })
  }
  return out
}

const list = (addresses: Address[] | undefined) => (addresses?.length ? addresses.map(sesAddress) : undefined)

/**
 * Sends through Amazon SES v2 (SendEmail): Simple content with custom headers, or raw MIME
 * when the message has attachments. Every message is tagged `job_id` (and `batch_id`, `type`)
 * so that SES events map back to jobs; values are escaped with `encodeTagValue`.
 */
export function createSesTransport(options: SesTransportOptions = {}): SesTransport {
  const config = parseOptions(optionsSchema, options, 'createSesTransport')
  const defaultFrom = config.from !== undefined ? (parseAddress(config.from) as Address) : undefined
  const owned = config.client === undefined
  let client: SESv2Client
  if (config.client) {
    client = config.client
  } else {
    const { retryStrategy: _retryStrategy, ...clientConfig } = config.clientConfig ?? {}
    client = new SESv2Client({
      ...clientConfig,
      ...(config.region !== undefined && { region: config.region }),
      // The queue retries (and sees throttles); an SDK retry would send the same request up to 3 times.
      maxAttempts: 1,
    })
  }
  const baseTags = config.tags ?? {}

  function tagsFor(message: EmailMessage): MessageTag[] {
    const tags: Record<string, string> = { ...baseTags }
    for (const [name, value] of Object.entries(message.tags ?? {})) if (!RESERVED.has(name)) tags[name] = value
    tags.job_id = encodeTagValue(message.jobId)
    tags.type = encodeTagValue(message.type)
    if (message.batchId !== undefined) tags.batch_id = encodeTagValue(message.batchId)
    return Object.entries(tags).map(([Name, Value]) => ({ Name, Value }))
  }

  async function buildInput(message: EmailMessage): Promise<SendEmailCommandInput> {
    const from = senderOf(message, defaultFrom, PREFIX)
    const input: SendEmailCommandInput = {
      Destination: {
        ToAddresses: list(message.to),
        CcAddresses: list(message.cc),
        BccAddresses: list(message.bcc),
      },
      EmailTags: tagsFor(message),
      ConfigurationSetName: config.configurationSetName,
      FeedbackForwardingEmailAddress: config.feedbackForwardingEmailAddress,
      FeedbackForwardingEmailAddressIdentityArn: config.feedbackForwardingEmailAddressIdentityArn,
      FromEmailAddressIdentityArn: config.fromEmailAddressIdentityArn,
      Content: {},
    }
    const headers = message.headers ? simpleHeaders(message.headers) : []
    if (message.attachments?.length || headers === undefined) {
      // Raw: sender, reply-to and headers travel in the MIME; Destination still carries Bcc.
      input.Content = { Raw: { Data: await composeMime(message, { from, transport: 'ses' }) } }
      return input
    }
    input.FromEmailAddress = sesAddress(from)
    input.ReplyToAddresses = list(message.replyTo)
    input.Content = {
      Simple: {
        Subject: { Data: message.subject, Charset: 'UTF-8' },
        Body: {
          ...(message.text !== undefined && { Text: { Data: message.text, Charset: 'UTF-8' } }),
          ...(message.html !== undefined && { Html: { Data: message.html, Charset: 'UTF-8' } }),
        },
        ...(headers.length > 0 && { Headers: headers }),
      },
    }
    return input
  }

  return {
    name: config.name,
    client,

    async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
      try {
        const input = await buildInput(message)
        const output = await client.send(new SendEmailCommand(input), { abortSignal: context.signal })
        if (!output.MessageId) {
          throw new TransportError(`${PREFIX} SES answered without a MessageId`, { retry: 'later' })
        }
        return { messageId: output.MessageId }
      } catch (error) {
        throw toTransportError(error, context.signal, config.quotaRetryAfterMs)
      }
    },

    async getSendQuota({ signal } = {}): Promise<SendQuota> {
      try {
        const output = await client.send(new GetAccountCommand({}), signal ? { abortSignal: signal } : {})
        return {
          maxSendRate: output.SendQuota?.MaxSendRate ?? 0,
          max24HourSend: output.SendQuota?.Max24HourSend ?? 0,
          sentLast24Hours: output.SendQuota?.SentLast24Hours ?? 0,
        }
      } catch (error) {
        throw toTransportError(error, signal, config.quotaRetryAfterMs)
      }
    },

    async close() {
      if (owned) client.destroy()
    },
  }
}
