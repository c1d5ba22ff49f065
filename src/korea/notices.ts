// The processing notice of 정보통신망법 제50조 제7항: within 14 days of a recipient's consent, refusal or
// withdrawal, the sender tells them the result. The app calls this from its consent and unsubscribe handlers.
import { createHash } from 'node:crypto'
import { MailstreamError } from '../errors.js'
import { type AddressInput, parseAddress } from '../job.js'
import type { EmailQueue, EnqueueResult } from '../queue/types.js'
import { formatSeoulDate, seoulDayKey, toEpochMs } from './seoul-date.js'
import type { AdvertisingSender, ConsentChange } from './types.js'

export const CONSENT_CHANGES: readonly ConsentChange[] = ['consented', 'refused', 'withdrawn']

/** The built-in template and job type of the processing notice. */
export const CONSENT_NOTICE_TEMPLATE = 'consent-notice'

/** What `sendConsentNotice` takes. */
export interface ConsentNoticeInput {
  /** The recipient's address (`a@b.kr`, or `{ name, address }`). */
  to: AddressInput
  /** What the recipient did. */
  change: ConsentChange
  /**
   * When the recipient expressed it, as the app recorded it: shown as the date of the request and,
   * to the millisecond, what tells this change from another of the same kind. Give the stored time,
   * so that a retried handler sends once. Default: now (and then one notice per address, change
   * and Seoul day).
   */
  at?: Date | number | string
  /** `ko` or `en` (or a tag starting with them). Default `ko`. */
  locale?: string
  /** Who sends the advertising; its name is in the subject and the notice, its email and phone in the notice. */
  sender: Pick<AdvertisingSender, 'name'> & Partial<AdvertisingSender>
  /** How the recipient expressed it (`웹사이트`, `수신거부 링크`), shown after the request. Default: not shown. */
  method?: string
  /** The recipient's name, for the greeting. Default: none. */
  name?: string
  /** A page where the recipient can change their choice again. Default: none. */
  manageUrl?: string
  /** The notice's sender address. Default: the worker's `from`. */
  from?: AddressInput
  /** The current time (tests). Default `Date.now()`. */
  now?: Date | number
}

const CONTROL_RE = /[\u0000-\u001f\u007f]/

/** A short text of a name-like field, or `E_VALIDATION` naming it (it may reach a subject line). */
export function plainText(value: unknown, field: string, max = 200): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > max || CONTROL_RE.test(value)) {
    throw new MailstreamError('E_VALIDATION', `${field}: must be text of 1-${max} characters without line breaks`, {
      field,
    })
  }
  return value.trim()
}

/** The optional fields of a sender that the notices show. */
export function senderData(sender: ConsentNoticeInput['sender'] | undefined): Record<string, string> {
  if (typeof sender !== 'object' || sender === null) {
    throw new MailstreamError('E_VALIDATION', 'sender: must be the sender ({ name, email, phone, address })', {
      field: 'sender',
    })
  }
  const data: Record<string, string> = { senderName: plainText(sender.name, 'sender.name') }
  if (sender.email !== undefined) {
    // Shown as a mailto: link: an address, not any text.
    if (typeof sender.email !== 'string' || !parseAddress(sender.email.trim()) || sender.email.includes('<')) {
      throw new MailstreamError('E_VALIDATION', 'sender.email: must be an email address', { field: 'sender.email' })
    }
    data.senderEmail = sender.email.trim()
  }
  if (sender.phone !== undefined) data.senderPhone = plainText(sender.phone, 'sender.phone', 50)
  if (sender.address !== undefined) data.senderAddress = plainText(sender.address, 'sender.address', 300)
  return data
}

/** The recipient's address, lowercased: what keys a notice or reminder; `E_VALIDATION` (`to`) if none. */
export function recipientAddress(to: unknown, field = 'to'): string {
  const parsed =
    typeof to === 'string' || (typeof to === 'object' && to !== null) ? parseAddress(to as AddressInput) : null
  if (!parsed) throw new MailstreamError('E_VALIDATION', `${field}: must be an email address`, { field })
  return parsed.address.toLowerCase()
}

/** The address in an idempotency key: hashed, so that Redis keys name no one. */
export function addressDigest(address: string): string {
  return createHash('sha256').update(address).digest('base64url').slice(0, 22)
}

/**
 * The idempotency key of one notice: (address lowercased, change, `at` to the millisecond), or,
 * without `at`, the Seoul day instead of the instant.
 */
export function consentNoticeKey(address: string, change: ConsentChange, at: number | undefined, now: number): string {
  const when = at === undefined ? `day-${seoulDayKey(now)}` : String(at)
  return `consent-notice:${addressDigest(address.toLowerCase())}:${change}:${when}`
}

/**
 * Enqueues the "수신동의/수신거부 처리 결과 안내" (built-in template `consent-notice`, type
 * `consent-notice`) for one change: the sender's name, the change, the date it was requested (Seoul)
 * and its result. Idempotent per (address, change, `at`): a retried handler that passes the same
 * stored `at` gets the first job back (`duplicate: true`) for as long as the queue keeps idempotency
 * keys (`idempotencyTtlSeconds`, default 24 h); a later change (a withdrawal after a new consent)
 * has another `at` and is sent. Bad input is `E_VALIDATION` naming the field, and nothing is written.
 */
export async function sendConsentNotice(
  queue: Pick<EmailQueue, 'enqueue'>,
  input: ConsentNoticeInput,
): Promise<EnqueueResult> {
  if (typeof input !== 'object' || input === null) {
    throw new MailstreamError('E_VALIDATION', 'input: must be an object', { field: 'input' })
  }
  const address = recipientAddress(input.to)
  if (!CONSENT_CHANGES.includes(input.change)) {
    throw new MailstreamError('E_VALIDATION', "change: must be 'consented', 'refused' or 'withdrawn'", {
      field: 'change',
    })
  }
  const now = input.now === undefined ? Date.now() : toEpochMs(input.now, 'now')
  const at = input.at === undefined ? undefined : toEpochMs(input.at, 'at')
  const locale = input.locale ?? 'ko'
  const data: Record<string, unknown> = {
    ...senderData(input.sender),
    change: input.change,
    [input.change]: true,
    // Nothing here depends on the time of the call but through `at` (or its day): a retry is the
    // same job, also under a queue's strictIdempotency.
    date: formatSeoulDate(at ?? now, locale),
  }
  if (input.method !== undefined) data.method = plainText(input.method, 'method')
  if (input.name !== undefined) data.name = plainText(input.name, 'name')
  if (input.manageUrl !== undefined) data.manageUrl = input.manageUrl
  return queue.enqueue({
    type: CONSENT_NOTICE_TEMPLATE,
    to: input.to,
    ...(input.from !== undefined && { from: input.from }),
    template: CONSENT_NOTICE_TEMPLATE,
    locale,
    data,
    idempotencyKey: consentNoticeKey(address, input.change, at, now),
  })
}
