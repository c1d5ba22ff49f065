// The worker side of the Korean advertising profile: what a rendered message must be before it is sent.
import { MailstreamError } from '../errors.js'
import type { EmailJob } from '../job.js'
import type { EmailMessage } from '../transport.js'
import { checkAdvertisingFooter, describeFooterCheck } from './footer.js'
import { advertisingSubject, ordinarySubjectProblem } from './subject.js'
import type { AdvertisingSender } from './types.js'

/** The name a template reads the sender by: `{{#advertisingSender}}{{name}}{{/advertisingSender}}`. */
export const SENDER_VARIABLE = 'advertisingSender'

/** The http(s) link of a `List-Unsubscribe` header (`<https://...>, <mailto:...>`). */
function oneClickUrl(headers: Record<string, string> | undefined): string | undefined {
  if (!headers) return undefined
  const name = Object.keys(headers).find((key) => key.toLowerCase() === 'list-unsubscribe')
  const value = name === undefined ? undefined : headers[name]
  return value === undefined ? undefined : /<(https?:\/\/[^>]+)>/i.exec(value)?.[1]
}

/** A rule the message breaks: permanent, so the job is dead with the reason and never retried. */
const broken = (job: EmailJob, reason: string, field: string) =>
  new MailstreamError('E_VALIDATION', `job ${job.id}: ${reason}`, { field })

/**
 * Applies the advertising rules to a message about to be sent: an advertising job's subject gets
 * `(광고)` in front (a look-alike is refused) and its body must show the sender and the refusal
 * link (the signed one-click link when the template gave one); another job's rendered subject may
 * not carry the mark. Throws `E_VALIDATION` (dead, not retried) for a message that breaks a rule.
 */
export function applyAdvertisingRules(
  job: EmailJob,
  message: EmailMessage,
  sender: AdvertisingSender | undefined,
): EmailMessage {
  if (job.advertising === undefined) {
    const problem = job.template === undefined ? undefined : ordinarySubjectProblem(message.subject)
    if (problem !== undefined) throw broken(job, problem, 'subject')
    return message
  }
  if (!sender) {
    throw new MailstreamError(
      'E_CONFIG',
      `job ${job.id} is advertising but the worker has no advertising.sender to show in its footer (createEmailWorker({ advertising: { sender } }))`,
      { field: 'advertising.sender' },
    )
  }
  const subject = advertisingSubject(message.subject)
  if (!subject.ok) throw broken(job, subject.reason, 'subject')
  const check = checkAdvertisingFooter(message, sender, oneClickUrl(message.headers))
  if (!check.ok) throw broken(job, describeFooterCheck(check), check.html.length ? 'html' : 'text')
  return { ...message, subject: subject.subject }
}
