// Calendar dates in Asia/Seoul, which the notices of 정보통신망법 제50조 show and count in. Korea has
// kept UTC+9 without daylight saving since 1988, so a fixed offset is exact for any consent there is.
import { MailstreamError } from '../errors.js'

const SEOUL_OFFSET_MS = 9 * 3600 * 1000
const DAY_MS = 24 * 3600 * 1000

/** A calendar day in Seoul; `month` is 1-12. */
export interface SeoulDay {
  year: number
  month: number
  day: number
}

/** Epoch ms of a Date, epoch ms or ISO string; `E_VALIDATION` naming `field` for anything else. */
export function toEpochMs(value: unknown, field: string): number {
  const ms =
    value instanceof Date
      ? value.getTime()
      : typeof value === 'number'
        ? value
        : typeof value === 'string' && value.trim() !== ''
          ? Date.parse(value)
          : Number.NaN
  // 1970 to 2200: wider than any consent, and far inside what Date can hold.
  if (!Number.isFinite(ms) || ms < 0 || ms > 7_258_118_400_000) {
    throw new MailstreamError('E_VALIDATION', `${field}: must be a Date, epoch ms or an ISO 8601 date`, { field })
  }
  return ms
}

/** The Seoul calendar day an instant falls on. */
export function seoulDay(ms: number): SeoulDay {
  const shifted = new Date(ms + SEOUL_OFFSET_MS)
  return { year: shifted.getUTCFullYear(), month: shifted.getUTCMonth() + 1, day: shifted.getUTCDate() }
}

/** `YYYY-MM-DD` of the Seoul day an instant falls on. */
export function seoulDayKey(ms: number): string {
  const { year, month, day } = seoulDay(ms)
  return `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`
}

/** Epoch ms of 00:00 in Seoul on a day. */
export function startOfSeoulDay({ year, month, day }: SeoulDay): number {
  return Date.UTC(year, month - 1, day) - SEOUL_OFFSET_MS
}

/**
 * The Seoul day `months` calendar months after (or before, when negative) the day of `ms`, its day
 * of the month kept, or the last day of a shorter month (2024-02-29 + 12 months is 2025-02-28,
 * 2024-03-31 + 23 months is 2026-02-28): never later than the same date, which the law counts to.
 */
export function addSeoulMonths(ms: number, months: number): SeoulDay {
  const { year, month, day } = seoulDay(ms)
  const index = year * 12 + (month - 1) + months
  const targetYear = Math.floor(index / 12)
  const targetMonth = (index % 12) + 1
  const lastDay = new Date(Date.UTC(targetYear, targetMonth, 0)).getUTCDate()
  return { year: targetYear, month: targetMonth, day: Math.min(day, lastDay) }
}

/** Whole days from `from` to `to`, rounded up (0 when `to` is not later). */
export function daysUntil(from: number, to: number): number {
  return Math.max(0, Math.ceil((to - from) / DAY_MS))
}

const MONTHS_EN = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
]

/** The Seoul date of an instant in words: `2026년 12월 3일` for Korean, `December 3, 2026` otherwise. */
export function formatSeoulDate(ms: number, locale: string): string {
  const { year, month, day } = seoulDay(ms)
  if (locale.toLowerCase().split('-')[0] === 'ko') return `${year}년 ${month}월 ${day}일`
  return `${MONTHS_EN[month - 1]} ${day}, ${year}`
}
