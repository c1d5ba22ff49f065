import { isMachineOpen } from '../ab-test/machine.js'
import { parseAddress } from '../job.js'
import { providerOfAddress } from '../providers/classify.js'
import type { SesEventType } from './types.js'

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

type Json = Record<string, unknown>
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value)
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined)

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

/** An SES event record as the handler reads it, before the job and batch it names are looked up. */
export interface ParsedEvent {
  type: SesEventType
  messageId: string
  recipients: string[]
  bounceType?: (typeof BOUNCE_TYPES)[number]
  bounceSubType?: string
  complaintType?: string
  link?: string
  /** For a delivery delay: SES's `deliveryDelay.delayType` (`IPFailure`, `MailboxFull`, ...). */
  delayType?: string
  /** For an open: a person, or a machine (no user agent, Apple Mail Privacy Protection, a scanner). */
  opener?: 'human' | 'machine'
  timestamp: number
  /** The raw `job_id` tag, possibly encoded by the transport. */
  jobTag?: string
  /** The raw `batch_id` tag, possibly encoded by the transport. */
  batchTag?: string
  raw: Json
}

function recipientsOf(type: SesEventType, detail: Json, mail: Json): string[] {
  if (type === 'bounce') return addressList(detail.bouncedRecipients)
  if (type === 'complaint') return addressList(detail.complainedRecipients)
  if (type === 'deliveryDelay') return addressList(detail.delayedRecipients)
  if (type === 'delivery') return addressList(detail.recipients)
  return addressList(mail.destination)
}

/**
 * Reads an SES event record (configuration-set `eventType` or identity `notificationType`) from
 * the text of an SNS notification; undefined when it is not one. `now` stands in for a missing time.
 */
export function parseSesEvent(message: string, now: number): ParsedEvent | undefined {
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
  const time = Date.parse(asString(detail.timestamp) ?? asString(record.mail.timestamp) ?? '')
  const event: ParsedEvent = {
    type,
    messageId,
    recipients: recipientsOf(type, detail, record.mail),
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
  const delayType = asString(detail.delayType)
  if (type === 'deliveryDelay' && delayType && delayType.length <= 64) event.delayType = delayType
  if (type === 'open') event.opener = isMachineOpen(asString(detail.userAgent)) ? 'machine' : 'human'
  const jobTag = tagValue(record.mail.tags, 'job_id')
  const batchTag = tagValue(record.mail.tags, 'batch_id')
  if (jobTag) event.jobTag = jobTag
  if (batchTag) event.batchTag = batchTag
  return event
}

/**
 * The suppression entries an event adds: every recipient of a permanent bounce or a complaint,
 * each with its entry (JSON `{ reason, at }`). Empty for any other event.
 */
export function suppressionsOf(event: ParsedEvent, now: number): [address: string, entry: string][] {
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

/**
 * The `DeliveryDelay` types that say the receiving provider wants less from us, so that its rate is
 * lowered as after an SMTP 421 (AWS: "Contents of event data that Amazon SES publishes to Amazon
 * SNS", the deliveryDelay object):
 * - `IPFailure`: the sending IP is blocked or throttled by the recipient's provider;
 * - `SpamDetected`: the recipient's server sees a large amount of unsolicited mail from the account;
 * - `SendingDeferral`: SES deferred the message itself, which it does when the destination pushes back.
 * Not the others: `MailboxFull` is one recipient's mailbox; `RecipientServerError`,
 * `TransientCommunicationFailure`, `InternalFailure`, `General`, `BYOIPHostNameLookupUnavailable`
 * and `Undetermined` speak of a fault, not of our volume.
 */
export const SLOW_DOWN_DELAY_TYPES: ReadonlySet<string> = new Set(['IPFailure', 'SpamDetected', 'SendingDeferral'])

/** The mailbox providers a delivery delay asks to slow down (`other` never: it is many destinations). */
export function providersToSlowDown(event: ParsedEvent): string[] {
  if (event.type !== 'deliveryDelay' || !event.delayType || !SLOW_DOWN_DELAY_TYPES.has(event.delayType)) return []
  const providers = new Set(event.recipients.map((address) => providerOfAddress(address)))
  providers.delete('other')
  return [...providers]
}
