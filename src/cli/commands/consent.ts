// `mailstream consent due` and `consent remind`: the two-yearly advertising-consent reminder
// (정보통신망법 제50조 제8항) from the command line. Consents are the app's: the command reads them
// through a store module the app writes (or, for `due`, a JSON/NDJSON export of them).
import { readFile, stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import {
  type ConsentReminderOptions,
  type ConsentStore,
  consentsDue,
  type ListConsentsOptions,
  runConsentReminders,
} from '../../korea/reminders.js'
import { seoulDayKey } from '../../korea/seoul-date.js'
import type { AdvertisingConsent } from '../../korea/types.js'
import { withQueue } from '../connect.js'
import { count, type Invocation } from '../context.js'
import { table } from '../format.js'
import { UsageError } from '../usage-error.js'
import { loadUserModule } from '../user-module.js'

/**
 * What a `--store` module exports (default export, or a function returning it): the store itself,
 * or `{ store, ...reminder options }` (`sender` and `links` are needed by `consent remind`).
 */
export type ConsentStoreModule = ConsentStore | ({ store: ConsentStore } & Partial<ConsentReminderOptions>)

/** A consent export is read whole: this much is already more than a command-line preview needs. */
const MAX_FILE_BYTES = 200 * 1024 * 1024

const isStore = (value: unknown): value is Pick<ConsentStore, 'listConsents'> =>
  typeof (value as ConsentStore | undefined)?.listConsents === 'function'

/** A read-only store over the consents of a file, paged by address (a keyset cursor). */
function fileStore(consents: AdvertisingConsent[]): Pick<ConsentStore, 'listConsents'> {
  const sorted = [...consents].sort((a, b) => (String(a.address) < String(b.address) ? -1 : 1))
  return {
    async listConsents({ limit, cursor }: ListConsentsOptions) {
      // Every record: reminderSchedule works out which are due (and reports the unreadable ones).
      const from = cursor === undefined ? 0 : Number(cursor)
      const page = sorted.slice(from, from + limit)
      return { consents: page, ...(from + limit < sorted.length && { cursor: String(from + limit) }) }
    },
  }
}

async function readConsentFile(path: string, file: string): Promise<AdvertisingConsent[]> {
  if ((await stat(path)).size > MAX_FILE_BYTES) throw new UsageError(`${file}: over 200 MB; use a store module`)
  const text = await readFile(path, 'utf8')
  try {
    if (/\.ndjson$|\.jsonl$/.test(path)) {
      return text
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => JSON.parse(line) as AdvertisingConsent)
    }
    const parsed = JSON.parse(text) as unknown
    const list = Array.isArray(parsed) ? parsed : (parsed as { consents?: unknown })?.consents
    if (!Array.isArray(list)) throw new UsageError(`${file}: must hold an array of consents, or { "consents": [...] }`)
    return list as AdvertisingConsent[]
  } catch (error) {
    if (error instanceof UsageError) throw error
    throw new UsageError(`${file}: not valid JSON: ${(error as Error).message}`)
  }
}

interface LoadedStore {
  store: Pick<ConsentStore, 'listConsents'> & Partial<Pick<ConsentStore, 'markReminded'>>
  options: Partial<ConsentReminderOptions>
  writable: boolean
}

/** The store (and options) that `--store FILE` names. */
async function loadStore(file: string | boolean | undefined, command: string): Promise<LoadedStore> {
  if (typeof file !== 'string') throw new UsageError(`${command} needs --store FILE`)
  const path = resolve(file)
  try {
    await stat(path)
  } catch {
    throw new UsageError(`store file not found: ${file}`)
  }
  if (/\.(json|ndjson|jsonl)$/.test(path)) {
    return { store: fileStore(await readConsentFile(path, file)), options: {}, writable: false }
  }
  const value = (await loadUserModule(path, 'store module')) as ConsentStoreModule | undefined
  if (isStore(value)) return { store: value, options: {}, writable: typeof value.markReminded === 'function' }
  const wrapped = value as { store?: unknown } | undefined
  if (isStore(wrapped?.store)) {
    const { store, ...options } = wrapped as { store: ConsentStore } & Partial<ConsentReminderOptions>
    return { store, options, writable: typeof store.markReminded === 'function' }
  }
  throw new UsageError(`${file} must export a consent store ({ listConsents, markReminded }) or { store, ... }`)
}

function days(value: string | boolean | undefined): number {
  if (value === undefined) return 30
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 3660) throw new UsageError('--days must be 0-3660')
  return parsed
}

const day = (ms: number | undefined) => (ms === undefined ? '' : seoulDayKey(ms))

/** `mailstream consent due --store FILE [--days N]`: the reminders due within N days (dates in Asia/Seoul). */
export async function due({ values, print }: Invocation): Promise<void> {
  const { store, options } = await loadStore(values.store, 'consent due')
  const now = Date.now()
  const result = await consentsDue(store, {
    now,
    days: days(values.days),
    limit: count(values.count, 1000),
    ...(options.dueAfterMonths !== undefined && { dueAfterMonths: options.dueAfterMonths }),
  })
  if (values.json === true) {
    print(JSON.stringify(result, null, 2))
    return
  }
  const lines =
    result.consents.length === 0
      ? [`no reminders due within ${days(values.days)} days`]
      : [
          table(
            ['address', 'consented', 'last reminder', 'due', 'deadline', 'in'],
            result.consents.map((one) => [
              one.address,
              day(one.consentedAt),
              day(one.lastReminderAt),
              day(one.dueAt),
              day(one.deadline),
              one.overdue ? 'due now' : `${Math.ceil((one.dueAt - now) / 86_400_000)} d`,
            ]),
          ),
        ]
  if (!result.complete) lines.push('(more not shown: raise --count)')
  for (const bad of result.invalid) lines.push(`unreadable consent ${String(bad.address)}: ${bad.error}`)
  print(lines.join('\n'))
}

/** `mailstream consent remind --store MODULE`: one reminder run (as `runConsentReminders`), for cron. */
export const remind = withQueue(async (context) => {
  const { store, options, writable } = await loadStore(context.values.store, 'consent remind')
  if (!writable) throw new UsageError('consent remind needs a store module with markReminded, not a file')
  if (options.sender === undefined || options.links === undefined) {
    throw new UsageError('consent remind needs the store module to export { store, sender, links }')
  }
  const result = await runConsentReminders(context.queue, store as ConsentStore, {
    ...options,
    sender: options.sender,
    links: options.links,
  })
  if (context.json) {
    context.print(JSON.stringify(result, null, 2))
    return
  }
  const lines = [`enqueued ${result.enqueued}, already enqueued ${result.skipped}, not due ${result.notDue}`]
  for (const bad of result.failed) lines.push(`failed ${String(bad.address)}: ${bad.error}`)
  if (!result.complete) lines.push('stopped at maxConsents: run again to go on')
  context.print(lines.join('\n'))
})
