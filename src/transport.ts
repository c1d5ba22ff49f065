import { TransportError } from './errors.js'
import type { Address, Attachment, Priority } from './job.js'

/** A rendered email, ready for a transport. Built by the worker from a job. */
export interface EmailMessage {
  /** The job this message comes from; SES tags it as `job_id`. */
  jobId: string
  type: string
  priority: Priority
  from?: Address
  to: Address[]
  cc?: Address[]
  bcc?: Address[]
  replyTo?: Address[]
  subject: string
  html?: string
  text?: string
  headers?: Record<string, string>
  attachments?: Attachment[]
  tags?: Record<string, string>
  batchId?: string
}

export interface SendContext {
  /** Aborted when the send takes longer than the worker's `sendTimeoutMs` or the worker is stopped hard. */
  signal: AbortSignal
  /** 1 for the first try. */
  attempt: number
}

export interface SendResult {
  /** The provider's id for the message (SES MessageId, SMTP Message-ID). */
  messageId: string
  /** Recipients the provider refused while accepting the message for the others. */
  rejected?: string[]
}

/**
 * Anything with a `name` and a `send` is a transport. A failed send throws `TransportError`
 * with `retry: 'throttle' | 'later' | 'never'`; anything else thrown counts as `later`.
 */
export interface Transport {
  readonly name: string
  send(message: EmailMessage, context: SendContext): Promise<SendResult>
  close?(): Promise<void>
}

/** What a template renderer gives the worker for a job that names a template. */
export interface RenderedEmail {
  subject: string
  html?: string
  text?: string
  /** Extra headers the template adds (for example List-Unsubscribe on newsletters). */
  headers?: Record<string, string>
}

export interface RenderContext {
  locale?: string
  /** The job being rendered, for renderers that need its id, type or recipients. */
  job?: { id: string; type: string; to: Address[]; batchId?: string }
}

/** The part of a template renderer the worker uses. */
export interface TemplateRendererLike {
  render(name: string, data: Record<string, unknown>, context?: RenderContext): RenderedEmail | Promise<RenderedEmail>
}

/**
 * SES message tags allow only `A-Z a-z 0-9 _ -` in names and values, while job and batch ids
 * may also contain `.` and `:`. Tag values are escaped reversibly with `_` as the escape
 * character: `_` -> `__`, `.` -> `_d`, `:` -> `_c`, anything else -> `_x` and 4 hex digits.
 * A 128-character id stays within SES's 256-character limit. `decodeTagValue` undoes it.
 */
export function encodeTagValue(value: string): string {
  return value.replace(/[^A-Za-z0-9-]/g, (char) => {
    if (char === '_') return '__'
    if (char === '.') return '_d'
    if (char === ':') return '_c'
    return `_x${char.charCodeAt(0).toString(16).padStart(4, '0')}`
  })
}

/** The value `encodeTagValue` was given (for reading `job_id` and `batch_id` back from SES events). */
export function decodeTagValue(tag: string): string {
  return tag.replace(/_(?:x([0-9a-f]{4})|([_dc]))/g, (_match, hex: string | undefined, escaped: string | undefined) => {
    if (hex !== undefined) return String.fromCharCode(Number.parseInt(hex, 16))
    return escaped === '_' ? '_' : escaped === 'd' ? '.' : ':'
  })
}

/** The message's sender, or the transport's default; a message with neither cannot be sent. */
export function senderOf(message: EmailMessage, fallback: Address | undefined, prefix: string): Address {
  const from = message.from ?? fallback
  if (!from) {
    throw new TransportError(`${prefix} job ${message.jobId} has no sender: set from on the job, worker or transport`, {
      retry: 'never',
      statusCode: 'NoSender',
    })
  }
  return from
}
