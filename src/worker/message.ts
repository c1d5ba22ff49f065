import { MailstreamError } from '../errors.js'
import type { Address, EmailJob } from '../job.js'
import { splitList } from '../lua/entry.js'
import type { EmailMessage, RenderedEmail } from '../transport.js'
import type { Work } from './types.js'

const NOTHING_SUPPRESSED: ReadonlySet<string> = new Set()

/** Recipients a fetched job will be charged for, before its message is built. */
export const expectedRecipients = (work: Work): number =>
  Math.max(1, splitList(work.delivery.rcpt).length - work.suppressed.length)

/** What SES counts against its sending rate: every recipient of the message. */
export const recipientCount = (message: EmailMessage): number =>
  message.to.length + (message.cc?.length ?? 0) + (message.bcc?.length ?? 0)

/** The suppressed recipients of a job as a set (shared empty set for none). */
export const suppressedSet = (work: Work): ReadonlySet<string> =>
  work.suppressed.length > 0 ? new Set(work.suppressed) : NOTHING_SUPPRESSED

/** True when nothing is left to send: every recipient is on the suppression list. */
export function everyRecipientSuppressed(job: EmailJob, suppressed: ReadonlySet<string>): boolean {
  if (suppressed.size === 0) return false
  return [...job.to, ...(job.cc ?? []), ...(job.bcc ?? [])].every((address) =>
    suppressed.has(address.address.toLowerCase()),
  )
}

/** The template's headers with the job's own over them; header names match in any case. */
function mergeHeaders(
  rendered: Record<string, string>,
  own: Record<string, string> | undefined,
): Record<string, string> {
  if (!own) return rendered
  const overridden = new Set(Object.keys(own).map((name) => name.toLowerCase()))
  const merged: Record<string, string> = {}
  for (const [name, value] of Object.entries(rendered)) if (!overridden.has(name.toLowerCase())) merged[name] = value
  return Object.assign(merged, own)
}

/**
 * The message a transport gets for a job: its fields, what the template rendered (the job's own
 * subject and headers win), the default sender, and no suppressed recipient.
 */
export function buildMessage(
  job: EmailJob,
  suppressed: ReadonlySet<string>,
  defaultFrom: Address | undefined,
  rendered?: RenderedEmail,
): EmailMessage {
  const subject = job.subject ?? rendered?.subject
  if (!subject) throw new MailstreamError('E_TEMPLATE', `job ${job.id} has no subject`, { field: 'subject' })
  const keep = (list: Address[] | undefined) =>
    suppressed.size === 0 ? list : list?.filter((address) => !suppressed.has(address.address.toLowerCase()))
  const message: EmailMessage = {
    jobId: job.id,
    type: job.type,
    priority: job.priority,
    to: keep(job.to) ?? [],
    subject,
  }
  const from = job.from ?? defaultFrom
  const cc = keep(job.cc)
  const bcc = keep(job.bcc)
  const html = rendered ? rendered.html : job.html
  const text = rendered ? rendered.text : job.text
  const headers = rendered?.headers ? mergeHeaders(rendered.headers, job.headers) : job.headers
  if (from) message.from = from
  if (cc?.length) message.cc = cc
  if (bcc?.length) message.bcc = bcc
  if (job.replyTo) message.replyTo = job.replyTo
  if (html !== undefined) message.html = html
  if (text !== undefined) message.text = text
  if (headers) message.headers = headers
  if (job.attachments) message.attachments = job.attachments
  if (job.tags) message.tags = job.tags
  if (job.batchId !== undefined) message.batchId = job.batchId
  return message
}
