// The queue side of the Korean advertising profile: consent (or the transaction exception), the
// subject mark, the footer of raw bodies and quiet hours, all decided before anything is written.
import { type Calendar, createQuietHours } from '../calendar.js'
import { MailstreamError } from '../errors.js'
import { type EmailJob, MAX_PAYLOAD_BYTES, recipientsOf, showValue, type ValidatedJob } from '../job.js'
import type { EnqueueRecord } from '../lua/enqueue.js'
import { withTimeout } from '../timeout.js'
import { checkAdvertisingFooter, describeFooterCheck } from './footer.js'
import type { AdvertisingQueueConfig, ConsentLookup } from './options.js'
import { advertisingSubject, ordinarySubjectProblem } from './subject.js'
import { transactionExceptionEnds } from './transaction.js'
import type { AdvertisingConsent, AdvertisingSender } from './types.js'

/** What a queue with the `advertising` option does with jobs. */
export interface AdvertisingProfile {
  /** Refuses a job that is not advertising but carries the `(광고)` mark (or a look-alike) in its subject. */
  checkOrdinary(job: Pick<EmailJob, 'subject'>, lead?: string, fieldLead?: string): void
  /**
   * The advertising jobs of a call made ready: consent checked (one lookup for them all), subject
   * marked, raw bodies checked, due time held out of quiet hours, payload written again. Throws
   * naming the first job at fault; nothing is written for any of them.
   */
  prepare(list: ValidatedJob[], now: number, many?: boolean): Promise<void>
  /** A batch's shared subject marked (or refused) and its due time held out of quiet hours. */
  batchDueAt(dueAt: number, startedAt: number): number
  /** The records of a batch chunk whose recipient has consented; the others are counted in `withoutConsent`. */
  consented(records: EnqueueRecord[]): Promise<{ records: EnqueueRecord[]; withoutConsent: number }>
  /** Subject as an advertising batch's jobs carry it, or `E_VALIDATION` naming `subject`. */
  batchSubject(subject: string): string
  /** Throws `E_VALIDATION` when a raw (untemplated) advertising body lacks a footer item. */
  checkBody(job: Pick<EmailJob, 'template' | 'html' | 'text'>): void
}

const invalid = (message: string, field: string, cause?: unknown) =>
  new MailstreamError('E_VALIDATION', message, { field, ...(cause !== undefined && { cause }) })

/** How far ahead of this process's clock a consent's time may be: another server's clock may run ahead. */
const CLOCK_SKEW_MS = 5 * 60_000

/** A consent's time as epoch ms; NaN when it is not a date. */
const timeOf = (value: unknown): number =>
  value instanceof Date || typeof value === 'number' || typeof value === 'string'
    ? new Date(value).getTime()
    : Number.NaN

/**
 * The consent lookup, bounded by `timeoutMs` and read defensively: resolves the lower-case
 * addresses among `addresses` that have a consent given at or before `now`.
 */
function createConsentCheck(lookup: ConsentLookup, timeoutMs: number) {
  return async function consentedOf(addresses: string[], now: number): Promise<Set<string>> {
    let found: Iterable<AdvertisingConsent | null | undefined>
    try {
      found = await withTimeout(
        Promise.resolve().then(() => lookup([...addresses])),
        timeoutMs,
        () =>
          new MailstreamError(
            'E_TIMEOUT',
            `advertising.consent: no answer within consentTimeoutMs (${timeoutMs} ms); nothing was written`,
            { field: 'advertising.consent' },
          ),
      )
    } catch (cause) {
      if (cause instanceof MailstreamError && cause.code === 'E_TIMEOUT') throw cause
      throw new MailstreamError('E_CONSENT', 'advertising.consent: the consent lookup failed; nothing was written', {
        field: 'advertising.consent',
        cause,
      })
    }
    const wanted = new Set(addresses)
    const consented = new Set<string>()
    if (
      found === null ||
      typeof found !== 'object' ||
      typeof (found as Iterable<unknown>)[Symbol.iterator] !== 'function'
    ) {
      throw new MailstreamError('E_CONSENT', 'advertising.consent: must resolve an array of { address, consentedAt }', {
        field: 'advertising.consent',
      })
    }
    // An endless or huge answer would hold the event loop: a few per address asked is plenty.
    let budget = addresses.length * 4 + 100
    for (const consent of found) {
      if (--budget < 0) {
        throw new MailstreamError(
          'E_CONSENT',
          `advertising.consent: answered with more consents than the ${addresses.length} addresses asked for allow; nothing was written`,
          { field: 'advertising.consent' },
        )
      }
      if (typeof consent !== 'object' || consent === null || typeof consent.address !== 'string') continue
      const address = consent.address.trim().toLowerCase()
      // A consent dated in the future (beyond clock skew between servers), or not a date, is none yet.
      const at = timeOf(consent.consentedAt)
      if (wanted.has(address) && at <= now + CLOCK_SKEW_MS) consented.add(address)
    }
    return consented
  }
}

/** The profile of a queue's checked `advertising` option. */
export function createAdvertisingProfile(config: AdvertisingQueueConfig, commandTimeoutMs: number): AdvertisingProfile {
  const sender = config.sender as AdvertisingSender
  const lookup = config.consent as ConsentLookup
  // The queue bounds a whole enqueue by commandTimeoutMs: the lookup's own bound must come first,
  // or a late answer could still write a job whose caller was told it timed out.
  const timeoutMs = config.consentTimeoutMs ?? Math.min(2000, Math.floor(commandTimeoutMs / 2))
  if (timeoutMs >= commandTimeoutMs) {
    throw new MailstreamError(
      'E_CONFIG',
      `createEmailQueue: advertising.consentTimeoutMs: must be below commandTimeoutMs (${commandTimeoutMs}), got ${timeoutMs}`,
      { field: 'advertising.consentTimeoutMs' },
    )
  }
  const quiet: Calendar | undefined =
    config.quietHours === false ? undefined : createQuietHours(config.quietHours, 'advertising.quietHours', 'E_CONFIG')

  const consentedOf = createConsentCheck(lookup, timeoutMs)

  function markSubject(job: EmailJob, lead: string, fieldLead: string): void {
    if (job.subject === undefined) return // a template's subject is marked when the worker renders it
    const marked = advertisingSubject(job.subject)
    if (!marked.ok) throw invalid(`${lead}subject: ${marked.reason}`, `${fieldLead}subject`)
    if (marked.subject.length > 998)
      throw invalid(`${lead}subject: with (광고) in front, over 998 characters`, `${fieldLead}subject`)
    job.subject = marked.subject
  }

  function checkRawBody(job: Pick<EmailJob, 'template' | 'html' | 'text'>, lead = '', fieldLead = ''): void {
    if (job.template !== undefined) return // the worker checks what the template renders
    const check = checkAdvertisingFooter({ html: job.html, text: job.text }, sender)
    if (!check.ok)
      throw invalid(`${lead}${describeFooterCheck(check)}`, `${fieldLead}${check.html.length ? 'html' : 'text'}`)
  }

  const held = (dueAt: number, now: number): number => {
    if (!quiet) return dueAt
    const at = dueAt > 0 ? dueAt : now
    const open = quiet.nextOpen(at)
    return open === at ? dueAt : open
  }

  return {
    checkOrdinary(job, lead = '', fieldLead = '') {
      if (job.subject === undefined) return
      const problem = ordinarySubjectProblem(job.subject)
      if (problem !== undefined) throw invalid(`${lead}subject: ${problem}`, `${fieldLead}subject`)
    },

    async prepare(list, now, many = false) {
      const lead = (index: number) => (many ? `jobs[${index}]: ` : '')
      const fieldLead = (index: number) => (many ? `${index}.` : '')
      const needConsent = new Set<string>()
      list.forEach(({ job }, index) => {
        markSubject(job, lead(index), fieldLead(index))
        checkRawBody(job, lead(index), fieldLead(index))
        const { advertising } = job
        if (advertising === true) {
          for (const address of recipientsOf(job)) needConsent.add(address.address.toLowerCase())
        } else if (advertising !== undefined) {
          const ends = transactionExceptionEnds(advertising.transactionEndedAt)
          if (now > ends) {
            throw invalid(
              `${lead(index)}advertising.transactionEndedAt: the transaction ended ${new Date(advertising.transactionEndedAt).toISOString()}; the exception to consent lasted six months, until ${new Date(ends).toISOString()} (제50조 제1항 제1호)`,
              `${fieldLead(index)}advertising.transactionEndedAt`,
            )
          }
        }
      })
      const consented = needConsent.size > 0 ? await consentedOf([...needConsent], now) : new Set<string>()
      list.forEach((validated, index) => {
        const { job } = validated
        if (job.advertising === true) {
          const without = recipientsOf(job).filter((address) => !consented.has(address.address.toLowerCase()))
          if (without.length > 0) {
            throw new MailstreamError(
              'E_CONSENT',
              `${lead(index)}to: no advertising consent on record for ${without.map((address) => showValue(address.address)).join(', ')} (제50조 제1항); nothing was written`,
              { field: `${fieldLead(index)}to` },
            )
          }
        }
        validated.dueAt = held(validated.dueAt, now)
        validated.payload = JSON.stringify(job)
        if (Buffer.byteLength(validated.payload) > MAX_PAYLOAD_BYTES) {
          throw invalid(`${lead(index)}payload: over the ${MAX_PAYLOAD_BYTES}-byte limit`, `${fieldLead(index)}payload`)
        }
      })
    },

    batchDueAt: held,
    checkBody: (job) => checkRawBody(job),

    batchSubject(subject) {
      const marked = advertisingSubject(subject)
      if (!marked.ok) throw invalid(`subject: ${marked.reason}`, 'subject')
      return marked.subject
    },

    async consented(records) {
      const addresses = [...new Set(records.map((record) => record.rcpt))]
      const consented = await consentedOf(addresses, Date.now())
      const kept = records.filter((record) => consented.has(record.rcpt))
      return { records: kept, withoutConsent: records.length - kept.length }
    },
  }
}
