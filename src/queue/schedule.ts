// When a job is due, beyond `delayMs`/`sendAt`: the queue's sending calendar and quiet hours, which
// hold bulk mail to their next opening at enqueue, and the per-recipient `deliverAt` of a batch.
import { z } from 'zod'
import { type Calendar, createQuietHours, createSendingCalendar, type WeeklyHours } from '../calendar.js'
import { CLOCK_MESSAGE, type DeliverAt, deliverAtDue, isClock, isZone, ZONE_MESSAGE } from '../deliver-at.js'
import { MailstreamError } from '../errors.js'
import type { ValidatedJob } from '../job.js'

/** A queue's `sendingCalendar` or `quietHours`: weekly hours, and the types of mail they hold. */
export interface SendingHours extends WeeklyHours {
  /**
   * The `type`s of `enqueue`/`enqueueMany` jobs held; default `['newsletter']`. Every job of
   * `enqueueBatch` is held whatever its type. Transactional types are never held.
   */
  types?: string[]
}

/** Mail a reader waits for (a code, a confirmation): never held by a calendar or quiet hours. */
export const TRANSACTIONAL_TYPES: ReadonlySet<string> = new Set([
  'verification-code',
  'subscription-confirm',
  'subscription-cancel',
  'welcome',
])

/** One rule of a queue: a calendar (open time) and the types it holds. */
export interface HoldRule {
  calendar: Calendar
  types: ReadonlySet<string>
}

/** Moves a due time (epoch ms, 0 = now) to when mail may go out; returns it unchanged when open. */
export type Holder = (dueAt: number, now: number) => number

export interface Hold {
  /** The holder for jobs of `type` (from `enqueueBatch` or not); undefined when none holds them. */
  holderFor(type: string, fromBatch: boolean): Holder | undefined
}

const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** Rounds of calendar then quiet hours: each moves past one window at least, so this spans weeks. */
const MAX_ROUNDS = 32

/**
 * The zod schema of `sendingCalendar` (`quiet: false`) or `quietHours`: strict keys, then the
 * hours parsed by calendar.ts, its errors reported as issues of the field they name.
 */
export function sendingHoursSchema(quiet: boolean) {
  return z
    .strictObject({
      timeZone: z.string(),
      days: z.string().max(200).optional(),
      from: z.string(),
      to: z.string(),
      types: z
        .array(
          z
            .string()
            .regex(TYPE_RE, 'must be a job type (1-64 characters of A-Z a-z 0-9 . _ -)')
            .refine((type) => !TRANSACTIONAL_TYPES.has(type), {
              message: 'transactional mail (verification-code, subscription-confirm, ...) is never held',
            }),
        )
        .min(1)
        .max(100)
        .optional(),
    })
    .transform((hours, ctx): HoldRule => {
      const { types, days, ...rest } = hours
      const weekly: WeeklyHours = days === undefined ? rest : { ...rest, days }
      try {
        const calendar = quiet
          ? createQuietHours(weekly, 'hours', 'E_CONFIG')
          : createSendingCalendar(weekly, 'hours', 'E_CONFIG')
        return { calendar, types: new Set(types ?? ['newsletter']) }
      } catch (error) {
        if (!(error instanceof MailstreamError)) throw error
        ctx.addIssue({
          code: 'custom',
          path: (error.field ?? '').split('.').slice(1),
          message: error.message.replace(/^\[mailstream\] [^:]*: /, ''),
        })
        return z.NEVER
      }
    })
}

/** The first instant at or after `atMs` that every calendar has open, within MAX_ROUNDS; undefined if none. */
function openInAll(calendars: readonly Calendar[], atMs: number): number | undefined {
  let at = atMs
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let next = at
    for (const calendar of calendars) next = calendar.nextOpen(next)
    if (next === at) return at
    at = next
  }
  return undefined
}

/**
 * The queue's hold from its options; undefined without a calendar or quiet hours. Throws `E_CONFIG`
 * (field `quietHours`) when the two together leave no time to send.
 */
export function createHold(sendingCalendar?: HoldRule, quietHours?: HoldRule, now = Date.now()): Hold | undefined {
  const rules = [sendingCalendar, quietHours].filter((rule): rule is HoldRule => rule !== undefined)
  if (rules.length === 0) return undefined
  if (rules.length === 2 && openInAll([rules[0]?.calendar, rules[1]?.calendar] as Calendar[], now) === undefined) {
    throw new MailstreamError(
      'E_CONFIG',
      'createEmailQueue: quietHours: the quiet hours cover all of the sending calendar, so held mail could never go',
      { field: 'quietHours' },
    )
  }
  const holders = new Map<string, Holder | undefined>()
  return {
    holderFor(type, fromBatch) {
      const key = `${fromBatch ? 'b' : 'j'}${type}`
      if (holders.has(key)) return holders.get(key)
      const calendars = TRANSACTIONAL_TYPES.has(type)
        ? []
        : rules.filter((rule) => fromBatch || rule.types.has(type)).map((rule) => rule.calendar)
      const holder: Holder | undefined =
        calendars.length === 0
          ? undefined
          : (dueAt, at) => {
              const from = Math.max(dueAt, at)
              const open = openInAll(calendars, from) ?? from
              return open === from ? dueAt : open
            }
      if (holders.size >= 1000) holders.clear()
      holders.set(key, holder)
      return holder
    },
  }
}

/**
 * `hold` with `extra` (the advertising profile's quiet hours) applied to every job after it, and the
 * two taken in turn until both agree, within MAX_ROUNDS; `extra` alone where `hold` holds nothing.
 */
export function withHolder(hold: Hold | undefined, extra: Holder): Hold {
  return {
    holderFor(type, fromBatch) {
      const base = hold?.holderFor(type, fromBatch)
      if (!base) return extra
      return (dueAt, now) => {
        let at = dueAt
        for (let round = 0; round < MAX_ROUNDS; round++) {
          const next = extra(base(at, now), now)
          if (next === at) return at
          at = next
        }
        return extra(at, now) // when the two never agree, the quiet hours have the last word
      }
    },
  }
}

/** Holds a job validated for `enqueue`/`enqueueMany` to the queue's next opening (its `dueAt` moved). */
export function holdJob(hold: Hold, validated: ValidatedJob): void {
  const holder = hold.holderFor(validated.job.type, false)
  if (holder) validated.dueAt = holder(validated.dueAt, validated.job.createdAt)
}

/** What a recipient of `enqueueBatch` may say about when its job is due. */
export interface RecipientTime {
  timeZone?: unknown
  deliverAt?: unknown
}

/** Due time of one recipient's job: the batch's own unless the recipient gives a time zone. */
export type RecipientDue = (recipient: RecipientTime | undefined, index: number) => number

function invalid(index: number, field: string, message: string): MailstreamError {
  return new MailstreamError('E_VALIDATION', `recipients[${index}]: ${field}: ${message}`, {
    field: `recipients.${index}.${field}`,
  })
}

/** Distinct (time, zone) pairs remembered per batch: each is worked out once, not per recipient. */
const MAX_CACHED = 1000

/**
 * The due time of each recipient of a batch, from what the batch's options made of it (`dueAt`,
 * with the batch's `deliverAt` if any), a recipient's own `timeZone` (the batch's `deliverAt.local`
 * in that zone) or `deliverAt`, and the queue's hold. Every instant is computed from `now`, the
 * batch's start, so recipients of one zone get one instant.
 */
export function batchDue(batch: {
  type: string
  dueAt: number
  deliverAt: DeliverAt | undefined
  /** The batch gives `sendAt` or `delayMs`: a recipient's `deliverAt` would contradict it. */
  timed: boolean
  now: number
  hold: Hold | undefined
}): RecipientDue {
  const { dueAt, deliverAt, timed, now } = batch
  const holder = batch.hold?.holderFor(batch.type, true)
  const held = holder ? holder(dueAt, now) : dueAt
  const cache = new Map<string, number>()
  return (recipient, index) => {
    if (recipient === undefined) return held
    const { timeZone, deliverAt: own } = recipient
    if (timeZone === undefined && own === undefined) return held
    let local: unknown
    let zone: unknown
    let zoneField = 'timeZone'
    if (own !== undefined) {
      if (timeZone !== undefined) throw invalid(index, 'timeZone', 'give timeZone or deliverAt, not both')
      if (timed) throw invalid(index, 'deliverAt', 'the batch gives sendAt or delayMs: give deliverAt in its options')
      if (typeof own !== 'object' || own === null || Array.isArray(own)) {
        throw invalid(index, 'deliverAt', "must be { local: 'HH:MM', timeZone }")
      }
      for (const key of Object.keys(own)) {
        if (key !== 'local' && key !== 'timeZone') throw invalid(index, `deliverAt.${key}`, 'unknown field')
      }
      ;({ local, timeZone: zone } = own as Partial<DeliverAt>)
      zoneField = 'deliverAt.timeZone'
      if (!isClock(local)) throw invalid(index, 'deliverAt.local', CLOCK_MESSAGE)
    } else {
      if (deliverAt === undefined) {
        throw invalid(
          index,
          'timeZone',
          'the batch has no deliverAt: give deliverAt: { local, timeZone } in its options',
        )
      }
      local = deliverAt.local
      zone = timeZone
    }
    if (!isZone(zone)) throw invalid(index, zoneField, ZONE_MESSAGE)
    const key = `${local as string} ${zone}`
    let due = cache.get(key)
    if (due === undefined) {
      due = deliverAtDue({ local: local as string, timeZone: zone }, now)
      if (holder) due = holder(due, now)
      if (cache.size >= MAX_CACHED) cache.clear()
      cache.set(key, due)
    }
    return due
  }
}
