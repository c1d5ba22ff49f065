// The two-yearly consent reminder of 정보통신망법 제50조 제8항 (시행령 제62조의3): every recipient who
// consented to advertising is told, before two years pass, that they consented, when, and how to keep
// or withdraw it. Consents live in the app; this reads them through a store the app implements.
import { isMailstreamError, MailstreamError } from '../errors.js'
import type { EmailJobInput } from '../job.js'
import type { EmailQueue } from '../queue/types.js'
import type { UnsubscribeSecret } from '../templates/unsubscribe.js'
import { withTimeout } from '../timeout.js'
import { consentActionUrl, createConsentActionToken } from './links.js'
import { addressDigest, recipientAddress, senderData } from './notices.js'
import { addSeoulMonths, formatSeoulDate, seoulDayKey, startOfSeoulDay, toEpochMs } from './seoul-date.js'
import type { AdvertisingConsent, AdvertisingSender } from './types.js'

/** The built-in template and job type of the reminder. */
export const CONSENT_REMINDER_TEMPLATE = 'consent-reminder'

const DAY_MS = 24 * 3600 * 1000

/** What `listConsents` is asked for. */
export interface ListConsentsOptions {
  /** The reminders wanted are those due before this instant (the run's `now`, or the end of the preview). */
  dueBefore: Date
  /**
   * The same, as the store can query it: consents whose later of `consentedAt` and `lastReminderAt`
   * is before this instant (`coalesce(greatest(consented_at, last_reminder_at), consented_at) < $1`).
   * A few days later than the exact cutoff (month ends): returning more is fine, they are filtered;
   * returning fewer misses reminders.
   */
  consentedOrRemindedBefore: Date
  /** At most this many per page. */
  limit: number
  /** The `cursor` of the previous page; absent for the first. */
  cursor?: string
}

/** The app's consent records, as the reminder job reads and updates them. */
export interface ConsentStore {
  /** A page of consents that may be due (see `ListConsentsOptions`); `cursor` when there are more pages. */
  listConsents(options: ListConsentsOptions): Promise<{ consents: AdvertisingConsent[]; cursor?: string }>
  /** Records that a reminder to `address` (lowercased) was enqueued at `at`: its `lastReminderAt`. */
  markReminded(address: string, at: Date): Promise<void>
}

/** When one consent's reminder is due, in Asia/Seoul calendar months. */
export interface ReminderSchedule {
  /** Lowercased. */
  address: string
  /** Epoch ms of the consent. */
  consentedAt: number
  /** Epoch ms of the last reminder, if one was sent after the consent. */
  lastReminderAt?: number
  /** Epoch ms: the later of the two, which the period counts from. */
  since: number
  /** Epoch ms: 00:00 in Seoul, `dueAfterMonths` calendar months after the day of `since`. */
  dueAt: number
  /**
   * Epoch ms: 00:00 in Seoul on the two-year anniversary of the consent that the next reminder must
   * come before (시행령 제62조의3: every two years from the consent, before the same date; a
   * 29 February consent's anniversary is 28 February). A reminder answers for the period it falls in.
   */
  deadline: number
}

/** Pure: when the reminder of one consent is due. `dueAfterMonths` default 23. `E_VALIDATION` for a bad date. */
export function reminderSchedule(
  consent: AdvertisingConsent,
  options: { dueAfterMonths?: number } = {},
): ReminderSchedule {
  const months = options.dueAfterMonths ?? 23
  const address = recipientAddress(consent?.address, 'address')
  const consentedAt = toEpochMs(consent.consentedAt, 'consentedAt')
  const reminded =
    consent.lastReminderAt === undefined || consent.lastReminderAt === null
      ? undefined
      : toEpochMs(consent.lastReminderAt, 'lastReminderAt')
  // A reminder older than the consent (a new consent after a withdrawal) counts from the consent.
  const lastReminderAt = reminded !== undefined && reminded >= consentedAt ? reminded : undefined
  const since = lastReminderAt ?? consentedAt
  const dueAt = startOfSeoulDay(addSeoulMonths(since, months))
  // Each reminder answers for the two-year period it falls in: the next deadline is the anniversary
  // after the one that ends that period.
  let years = 2
  while (startOfSeoulDay(addSeoulMonths(consentedAt, years * 12)) <= since) years += 2
  if (lastReminderAt !== undefined) years += 2
  const deadline = startOfSeoulDay(addSeoulMonths(consentedAt, years * 12))
  return { address, consentedAt, ...(lastReminderAt !== undefined && { lastReminderAt }), since, dueAt, deadline }
}

/** The store's cutoff for reminders due before `dueBefore`: exact cutoff plus the days a month end can take off. */
function cutoffFor(dueBefore: number, months: number): Date {
  return new Date(startOfSeoulDay(addSeoulMonths(dueBefore, -months)) + 4 * DAY_MS)
}

/** Rejects with `E_TIMEOUT` when the app's store has not answered within `ms`. */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return withTimeout(
    Promise.resolve(promise),
    ms,
    () => new MailstreamError('E_TIMEOUT', `${what}: the store did not answer within ${ms} ms`),
  )
}

function integer(value: unknown, field: string, min: number, max: number, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new MailstreamError('E_CONFIG', `${field}: must be an integer from ${min} to ${max}`, { field })
  }
  return value
}

interface PagingOptions {
  batchSize: number
  maxConsents: number
  storeTimeoutMs: number
}

/**
 * Walks the store's pages for reminders due before `dueBefore`, at most `maxConsents` records.
 * Resolves true when the store had no more pages.
 */
async function eachPage(
  store: Pick<ConsentStore, 'listConsents'>,
  dueBefore: number,
  months: number,
  paging: PagingOptions,
  visit: (consents: AdvertisingConsent[]) => Promise<boolean | undefined>,
): Promise<boolean> {
  let cursor: string | undefined
  let seen = 0
  for (;;) {
    const page = await bounded(
      store.listConsents({
        dueBefore: new Date(dueBefore),
        consentedOrRemindedBefore: cutoffFor(dueBefore, months),
        limit: paging.batchSize,
        ...(cursor !== undefined && { cursor }),
      }),
      paging.storeTimeoutMs,
      'store.listConsents',
    )
    if (typeof page !== 'object' || page === null || !Array.isArray(page.consents)) {
      throw new MailstreamError('E_CONFIG', 'store.listConsents: must resolve { consents: [...], cursor? }', {
        field: 'store.listConsents',
      })
    }
    seen += page.consents.length
    if ((await visit(page.consents)) === false) return false
    const next = page.cursor
    if (next === undefined || next === null || next === '') return true
    // A cursor that does not move would make this loop forever.
    if (next === cursor) {
      throw new MailstreamError('E_CONFIG', 'store.listConsents: returned the cursor it was given', {
        field: 'store.listConsents',
      })
    }
    if (seen >= paging.maxConsents) return false
    cursor = String(next)
  }
}

function pagingOf(options: { batchSize?: number; maxConsents?: number; storeTimeoutMs?: number }): PagingOptions {
  return {
    batchSize: integer(options.batchSize, 'batchSize', 1, 10_000, 100),
    maxConsents: integer(options.maxConsents, 'maxConsents', 1, 10_000_000, 100_000),
    storeTimeoutMs: integer(options.storeTimeoutMs, 'storeTimeoutMs', 10, 600_000, 30_000),
  }
}

/** A consent the store returned that could not be read (bad address or date). */
export interface InvalidConsent {
  address: unknown
  error: string
}

/** One row of `consentsDue`. */
export interface DueConsent extends ReminderSchedule {
  /** True when `dueAt` is not later than `now`: the next run sends it. */
  overdue: boolean
}

export interface ConsentsDueOptions {
  /** Default `Date.now()`. */
  now?: Date | number
  /** Show what falls due within this many days from `now`. Default 30. */
  days?: number
  /** At most this many rows. Default 1000. */
  limit?: number
  /** Default 23. */
  dueAfterMonths?: number
  /** Consents asked for per page. Default 100. */
  batchSize?: number
  /** Stop reading after this many records. Default 100 000. */
  maxConsents?: number
  /** Longest wait for one store call. Default 30 000. */
  storeTimeoutMs?: number
}

/**
 * The reminders due within `days` of `now`, soonest first (the preview of `mailstream consent due`).
 * Reads the store only; nothing is enqueued or marked. `complete` is false when `limit` or
 * `maxConsents` cut the list short.
 */
export async function consentsDue(
  store: Pick<ConsentStore, 'listConsents'>,
  options: ConsentsDueOptions = {},
): Promise<{ consents: DueConsent[]; invalid: InvalidConsent[]; complete: boolean }> {
  const now = options.now === undefined ? Date.now() : toEpochMs(options.now, 'now')
  const days = integer(options.days, 'days', 0, 3660, 30)
  const limit = integer(options.limit, 'limit', 1, 1_000_000, 1000)
  const months = integer(options.dueAfterMonths, 'dueAfterMonths', 1, 23, 23)
  const until = now + days * DAY_MS
  const found: DueConsent[] = []
  const invalid: InvalidConsent[] = []
  let cut = false
  const complete = await eachPage(store, until, months, pagingOf(options), async (consents) => {
    for (const consent of consents) {
      let schedule: ReminderSchedule
      try {
        schedule = reminderSchedule(consent, { dueAfterMonths: months })
      } catch (error) {
        if (!isMailstreamError(error)) throw error
        invalid.push({ address: consent?.address, error: error.message })
        continue
      }
      if (schedule.dueAt >= until) continue
      if (found.length >= limit) {
        cut = true
        return false
      }
      found.push({ ...schedule, overdue: schedule.dueAt <= now })
    }
    return undefined
  })
  found.sort((a, b) => a.dueAt - b.dueAt || (a.address < b.address ? -1 : 1))
  return { consents: found, invalid, complete: complete && !cut }
}

/** How the reminder's keep and withdraw links are made. */
export type ConsentReminderLinks =
  | {
      /** Signs the links (`createConsentActionToken`); 16+ characters, or a list for rotation (the first signs). */
      secret: UnsubscribeSecret
      /** The app's page for both links; `?token=` is added. Verify with `verifyConsentActionToken`. */
      url: string
      /** Links expire after this. Default: never (withdrawing must keep working). */
      ttlSeconds?: number
    }
  | {
      keepUrl(consent: AdvertisingConsent): string
      withdrawUrl(consent: AdvertisingConsent): string
    }

export interface ConsentReminderOptions {
  /** Who sends the advertising: its name is in the subject and the reminder. */
  sender: Pick<AdvertisingSender, 'name'> & Partial<AdvertisingSender>
  links: ConsentReminderLinks
  /** The current time (a fake clock in tests). Default `Date.now()`. */
  now?: Date | number
  /** Locale of a consent that has none. Default `ko`. */
  locale?: string
  /** Calendar months (Asia/Seoul) after the consent or the last reminder when a reminder is due, 1-23. Default 23. */
  dueAfterMonths?: number
  /** Consents asked for and enqueued per page. Default 100. */
  batchSize?: number
  /** Stop after reading this many records in one run (the next run goes on). Default 100 000. */
  maxConsents?: number
  /** Longest wait for one store call. Default 30 000. */
  storeTimeoutMs?: number
  /** The reminders' sender address. Default: the worker's `from`. */
  from?: EmailJobInput['from']
  /** Default `low`: a run's reminders wait behind verification codes. */
  priority?: EmailJobInput['priority']
}

export interface ConsentReminderResult {
  /** Reminders enqueued by this run. */
  enqueued: number
  /** Due reminders already enqueued for the same period (an earlier run, before `markReminded` took). */
  skipped: number
  /** Records the store returned that are not due yet. */
  notDue: number
  /** Records that could not be enqueued (bad address or date, bad link): the others went on. */
  failed: InvalidConsent[]
  /** False when `maxConsents` stopped the run before the store's last page. */
  complete: boolean
}

/** The idempotency key of one reminder: (address, Seoul day the period counts from). */
export function consentReminderKey(address: string, since: number): string {
  return `consent-reminder:${addressDigest(address.toLowerCase())}:${seoulDayKey(since)}`
}

function linkMaker(links: ConsentReminderLinks | undefined, now: number) {
  if (typeof links !== 'object' || links === null) {
    throw new MailstreamError('E_CONFIG', 'links: must be { secret, url } or { keepUrl, withdrawUrl }', {
      field: 'links',
    })
  }
  if ('secret' in links) {
    if (typeof links.url !== 'string' || !/^https?:\/\//.test(links.url)) {
      throw new MailstreamError('E_CONFIG', 'links.url: must be an http(s) URL', { field: 'links.url' })
    }
    const ttl = integer(links.ttlSeconds, 'links.ttlSeconds', 60, 10 * 366 * 86_400, 0)
    const expiresAt = ttl === 0 ? undefined : now + ttl * 1000
    const url = (consent: AdvertisingConsent, action: 'keep' | 'withdraw') =>
      consentActionUrl(
        links.url,
        createConsentActionToken(
          { email: consent.address, action, ...(expiresAt !== undefined && { expiresAt }) },
          links.secret,
        ),
      )
    // Checks the secret now: a bad one is a configuration error of the run, not of each consent.
    createConsentActionToken({ email: 'check@example.com', action: 'keep' }, links.secret)
    return {
      keep: (consent: AdvertisingConsent) => url(consent, 'keep'),
      withdraw: (consent: AdvertisingConsent) => url(consent, 'withdraw'),
    }
  }
  if (typeof links.keepUrl !== 'function' || typeof links.withdrawUrl !== 'function') {
    throw new MailstreamError('E_CONFIG', 'links: must be { secret, url } or { keepUrl, withdrawUrl }', {
      field: 'links',
    })
  }
  return { keep: links.keepUrl, withdraw: links.withdrawUrl }
}

/** Errors of one job that leave the others to go on; anything else (Redis, a closed queue) ends the run. */
const ownFault = (error: unknown) => isMailstreamError(error) && error.code === 'E_VALIDATION'

/**
 * Enqueues the reminder (built-in template `consent-reminder`) for every consent whose reminder is
 * due at `now` (`dueAfterMonths` calendar months, Asia/Seoul, after the consent or the last
 * reminder), then records it with `store.markReminded(address, now)`. Call it daily (or run it from
 * a scheduler): a run reads the store page by page and enqueues each page's reminders together.
 *
 * Idempotent per (address, period): the job's idempotency key is the address and the Seoul day the
 * period counts from, so a second run the same day enqueues nothing, even when `markReminded`
 * failed after the enqueue (within the queue's `idempotencyTtlSeconds`; past it, the store's
 * `lastReminderAt` is what says the reminder went). A Redis failure ends the run with its error;
 * a bad record is reported in `failed` and the others go on.
 */
export async function runConsentReminders(
  queue: Pick<EmailQueue, 'enqueue'>,
  store: ConsentStore,
  options: ConsentReminderOptions,
): Promise<ConsentReminderResult> {
  if (typeof store?.listConsents !== 'function' || typeof store.markReminded !== 'function') {
    throw new MailstreamError('E_CONFIG', 'store: must have listConsents and markReminded', { field: 'store' })
  }
  const now = options.now === undefined ? Date.now() : toEpochMs(options.now, 'now')
  const months = integer(options.dueAfterMonths, 'dueAfterMonths', 1, 23, 23)
  const paging = pagingOf(options)
  const sender = senderData(options.sender)
  const links = linkMaker(options.links, now)
  const result: ConsentReminderResult = { enqueued: 0, skipped: 0, notDue: 0, failed: [], complete: true }

  const jobFor = (consent: AdvertisingConsent, schedule: ReminderSchedule): EmailJobInput => {
    const locale = typeof consent.locale === 'string' ? consent.locale : (options.locale ?? 'ko')
    const name = typeof consent.name === 'string' && consent.name.trim() !== '' ? consent.name.trim() : undefined
    return {
      type: CONSENT_REMINDER_TEMPLATE,
      to: name === undefined ? schedule.address : { name, address: schedule.address },
      ...(options.from !== undefined && { from: options.from }),
      template: CONSENT_REMINDER_TEMPLATE,
      locale,
      priority: options.priority ?? 'low',
      data: {
        ...sender,
        ...(name !== undefined && { name }),
        consentedDate: formatSeoulDate(schedule.consentedAt, locale),
        keepUrl: links.keep(consent),
        withdrawUrl: links.withdraw(consent),
      },
      idempotencyKey: consentReminderKey(schedule.address, schedule.since),
    }
  }

  result.complete = await eachPage(store, now + 1, months, paging, async (consents) => {
    const due: { address: string; job: EmailJobInput }[] = []
    for (const consent of consents) {
      try {
        const schedule = reminderSchedule(consent, { dueAfterMonths: months })
        if (schedule.dueAt > now) result.notDue++
        else due.push({ address: schedule.address, job: jobFor(consent, schedule) })
      } catch (error) {
        if (!isMailstreamError(error)) throw error
        result.failed.push({ address: consent?.address, error: error.message })
      }
    }
    // Enqueued in one turn: the queue writes them with one script call.
    const settled = await Promise.allSettled(due.map(({ job }) => queue.enqueue(job)))
    const reminded: string[] = []
    let fatal: unknown
    settled.forEach((outcome, index) => {
      const { address } = due[index] as { address: string }
      if (outcome.status === 'fulfilled') {
        if (outcome.value.duplicate) result.skipped++
        else result.enqueued++
        reminded.push(address)
      } else if (isMailstreamError(outcome.reason) && outcome.reason.code === 'E_IDEMPOTENCY_CONFLICT') {
        // Under strictIdempotency: enqueued by an earlier run with other (freshly signed) links.
        result.skipped++
        reminded.push(address)
      } else if (ownFault(outcome.reason)) {
        result.failed.push({ address, error: (outcome.reason as Error).message })
      } else fatal ??= outcome.reason
    })
    // Marked one by one: an app's database is not asked for a page's worth of writes at once.
    for (const address of reminded) {
      await bounded(store.markReminded(address, new Date(now)), paging.storeTimeoutMs, 'store.markReminded')
    }
    if (fatal !== undefined) throw fatal
    return undefined
  })
  return result
}
