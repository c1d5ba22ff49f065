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
