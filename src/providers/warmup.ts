import { addDays, instantOf, wallTimeAt } from '../zoned-time.js'

/**
 * Built-in warm-up schedules: the most recipients per provider on each sending day of a new
 * sending domain (day 1 first); past the last day there is no cap. `conservative` takes about a
 * month to 50 000 a day, `moderate` two weeks to 100 000.
 */
export const WARMUP_SCHEDULES = {
  conservative: [
    50, 100, 200, 300, 500, 700, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000, 7500, 9000, 11_000, 13_000, 15_000,
    18_000, 21_000, 25_000, 30_000, 35_000, 40_000, 45_000, 50_000,
  ],
  moderate: [200, 500, 1000, 2000, 4000, 7000, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 80_000, 100_000],
} as const satisfies Record<string, readonly number[]>
export type WarmupScheduleName = keyof typeof WARMUP_SCHEDULES

/** The calendar day of `atMs` in `timeZone` as `YYYYMMDD` (`20261203`): days compare as strings. */
export function dayKey(atMs: number, timeZone: string): string {
  const { year, month, day } = wallTimeAt(atMs, timeZone)
  return `${year}${String(month).padStart(2, '0')}${String(day).padStart(2, '0')}`
}

/** The instant the day after the one of `atMs` begins in `timeZone`. */
export function nextDayStart(atMs: number, timeZone: string): number {
  const { year, month, day } = wallTimeAt(atMs, timeZone)
  const next = addDays(year, month, day, 1)
  return instantOf(next.year, next.month, next.day, 0, timeZone)
}

/** `YYYY-MM-DD` as a day key (`20261203`). */
export const startDayKey = (date: string): string => date.replaceAll('-', '')
