// Sending calendars and quiet hours: weekly windows of wall-clock time in one time zone.
import { type ErrorCode, MailstreamError } from './errors.js'
import { addDays, instantOf, isTimeZone, wallTimeAt } from './zoned-time.js'

/** Weekly hours in one time zone, such as `{ timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '20:00' }`. */
export interface WeeklyHours {
  /** IANA time zone (`Asia/Seoul`); daylight saving follows the platform's time-zone data. */
  timeZone: string
  /** `daily` (the default), a day (`sat`), a range (`mon-fri`, `fri-mon`), or a list of them (`mon,wed,fri-sat`). */
  days?: string
  /** Start, `HH:MM` of the wall clock, inclusive. */
  from: string
  /** End, `HH:MM`, exclusive; `24:00` is the end of the day. Before `from`, the window runs past midnight. */
  to: string
}

/** When mail of some kind may go out: inside a sending calendar, or outside quiet hours. */
export interface Calendar {
  /** True when `atMs` is inside the open time. */
  isOpen(atMs: number): boolean
  /** `atMs` when open, else the first instant after it that is. */
  nextOpen(atMs: number): number
}

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']
const CLOCK_RE = /^([01]\d|2[0-3]):([0-5]\d)$/
const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000

interface Window {
  timeZone: string
  days: ReadonlySet<number>
  /** Minutes of the day; `to` <= `from` runs into the next day. */
  from: number
  to: number
}

function fail(code: ErrorCode, field: string, message: string): never {
  throw new MailstreamError(code, `${field}: ${message}`, { field })
}

/** `HH:MM` as minutes of the day; `24:00` only where `endOfDay` allows it. */
export function parseClock(value: unknown, field: string, code: ErrorCode = 'E_VALIDATION', endOfDay = false): number {
  if (endOfDay && value === '24:00') return 1440
  const match = typeof value === 'string' ? CLOCK_RE.exec(value) : null
  if (!match) fail(code, field, `expected a time of day as HH:MM (00:00-23:59), got ${JSON.stringify(value)}`)
  return Number(match[1]) * 60 + Number(match[2])
}

/** A validated IANA time zone. */
export function parseTimeZone(value: unknown, field: string, code: ErrorCode = 'E_VALIDATION'): string {
  if (typeof value !== 'string' || value.length > 64 || !isTimeZone(value)) {
    fail(code, field, `expected an IANA time zone such as Asia/Seoul, got ${JSON.stringify(value)}`)
  }
  return value
}

function parseDays(value: unknown, field: string, code: ErrorCode): Set<number> {
  if (value === undefined || value === 'daily') return new Set([0, 1, 2, 3, 4, 5, 6])
  const days = new Set<number>()
  const text = typeof value === 'string' ? value.toLowerCase().replace(/\s+/g, '') : ''
  for (const part of text.split(',')) {
    const [first, last, extra] = part.split('-')
    const start = DAY_NAMES.indexOf(first ?? '')
    const end = last === undefined ? start : DAY_NAMES.indexOf(last)
    if (start < 0 || end < 0 || extra !== undefined) {
      fail(code, field, `expected days such as "mon-fri", "sat,sun" or "daily", got ${JSON.stringify(value)}`)
    }
    for (let day = start; ; day = (day + 1) % 7) {
      days.add(day)
      if (day === end) break
    }
  }
  return days
}

function parseWindow(input: WeeklyHours, field: string, code: ErrorCode): Window {
  if (typeof input !== 'object' || input === null) fail(code, field, 'expected { timeZone, days?, from, to }')
  const known = new Set(['timeZone', 'days', 'from', 'to'])
  for (const key of Object.keys(input)) if (!known.has(key)) fail(code, `${field}.${key}`, 'unknown option')
  const from = parseClock(input.from, `${field}.from`, code)
  const to = parseClock(input.to, `${field}.to`, code, true)
  if (from === to) fail(code, `${field}.to`, 'the window is empty: from and to are the same time')
  return {
    timeZone: parseTimeZone(input.timeZone, `${field}.timeZone`, code),
    days: parseDays(input.days, `${field}.days`, code),
    from,
    to,
  }
}

/** The window of the wall-clock day `offset` days from the one at `atMs`, or undefined on a day it skips. */
function windowOn(window: Window, atMs: number, offset: number): [number, number] | undefined {
  const wall = wallTimeAt(atMs, window.timeZone)
  const date = addDays(wall.year, wall.month, wall.day, offset)
  const weekday = (((wall.weekday + offset) % 7) + 7) % 7
  if (!window.days.has(weekday)) return undefined
  const start = instantOf(date.year, date.month, date.day, window.from, window.timeZone)
  const endDate = window.to > window.from ? date : addDays(date.year, date.month, date.day, 1)
  return [start, instantOf(endDate.year, endDate.month, endDate.day, window.to, window.timeZone)]
}

/** The window holding `atMs` as [start, end), or undefined. A window may start the day before. */
function windowAround(window: Window, atMs: number): [number, number] | undefined {
  for (const offset of [-1, 0]) {
    const span = windowOn(window, atMs, offset)
    if (span && span[0] <= atMs && atMs < span[1]) return span
  }
  return undefined
}

/** The start of the first window after `atMs` (a week ahead at most, since some day of the week has one). */
function nextStart(window: Window, atMs: number): number {
  for (let offset = 0; offset <= 8; offset++) {
    const span = windowOn(window, atMs, offset)
    if (span && span[0] > atMs) return span[0]
  }
  return atMs + 7 * DAY_MS
}

/**
 * A sending calendar: mail goes out only inside the weekly hours. Bad hours throw `MailstreamError`
 * with `code` (default `E_VALIDATION`) and the field at fault.
 */
export function createSendingCalendar(
  hours: WeeklyHours,
  field = 'calendar',
  code: ErrorCode = 'E_VALIDATION',
): Calendar {
  const window = parseWindow(hours, field, code)
  return {
    isOpen: (atMs) => windowAround(window, atMs) !== undefined,
    nextOpen: (atMs) => (windowAround(window, atMs) ? atMs : nextStart(window, atMs)),
  }
}

/**
 * Quiet hours, the complement of a sending calendar: mail due inside them is held to their end
 * (`{ timeZone: 'Asia/Seoul', from: '21:00', to: '08:00' }` holds 23:00 mail to 08:00).
 */
export function createQuietHours(hours: WeeklyHours, field = 'quietHours', code: ErrorCode = 'E_VALIDATION'): Calendar {
  const window = parseWindow(hours, field, code)
  return {
    isOpen: (atMs) => windowAround(window, atMs) === undefined,
    nextOpen(atMs) {
      let at = atMs
      // Back-to-back quiet windows (21:00-24:00 daily, say) are crossed one after another.
      for (let step = 0; step < 8; step++) {
        const span = windowAround(window, at)
        if (!span) return at
        at = span[1]
      }
      return at
    },
  }
}

/**
 * The first instant at or after `afterMs` at which the wall clock in `timeZone` reads `local`
 * (`HH:MM`): `nextLocalTime('09:00', 'Asia/Seoul', now)` is the next 09:00 in Seoul.
 */
export function nextLocalTime(local: string, timeZone: string, afterMs: number, field = 'deliverAt'): number {
  const minutes = parseClock(local, `${field}.local`)
  parseTimeZone(timeZone, `${field}.timeZone`)
  const wall = wallTimeAt(afterMs, timeZone)
  for (let offset = 0; offset <= 2; offset++) {
    const date = addDays(wall.year, wall.month, wall.day, offset)
    const at = instantOf(date.year, date.month, date.day, minutes, timeZone)
    if (at >= afterMs) return at
    // A time that a fall-back change repeats is read again half an hour or an hour later.
    if (afterMs - at <= HOUR_MS) {
      for (const again of [at + HOUR_MS / 2, at + HOUR_MS]) {
        const reading = wallTimeAt(again, timeZone)
        if (again >= afterMs && reading.day === date.day && reading.hour * 60 + reading.minute === minutes) return again
      }
    }
  }
  return afterMs + DAY_MS
}
