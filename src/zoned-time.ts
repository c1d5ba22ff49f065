// Wall-clock time in an IANA time zone, from the platform's Intl data (daylight saving included).

/** A calendar date and a time of day in some zone; `month` is 1-12, `weekday` 0 (Sunday) to 6. */
export interface WallTime {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  weekday: number
}

const WEEKDAYS: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 }
const formats = new Map<string, Intl.DateTimeFormat>()

/** One formatter per zone: building one costs far more than using it. Throws RangeError for an unknown zone. */
function formatIn(timeZone: string): Intl.DateTimeFormat {
  let format = formats.get(timeZone)
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      weekday: 'short',
    })
    if (formats.size > 500) formats.clear()
    formats.set(timeZone, format)
  }
  return format
}

/** True when the platform knows the zone (`Asia/Seoul`, `UTC`, `America/New_York`). */
export function isTimeZone(timeZone: string): boolean {
  try {
    formatIn(timeZone)
    return true
  } catch {
    return false
  }
}

function partsAt(atMs: number, timeZone: string): WallTime & { second: number } {
  const parts: Record<string, string> = {}
  for (const { type, value } of formatIn(timeZone).formatToParts(atMs)) parts[type] = value
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second),
    weekday: WEEKDAYS[parts.weekday as string] ?? 0,
  }
}

/** The wall clock in `timeZone` at the instant `atMs`. */
export function wallTimeAt(atMs: number, timeZone: string): WallTime {
  const { second: _second, ...wall } = partsAt(atMs, timeZone)
  return wall
}

/** The zone's offset from UTC at `atMs`, in ms (Seoul: +9 h). */
function offsetAt(atMs: number, timeZone: string): number {
  const p = partsAt(atMs, timeZone)
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second)
  return asUtc - (atMs - (((atMs % 1000) + 1000) % 1000))
}

/**
 * The instant at which the wall clock in `timeZone` shows this date and minute of the day (`minutes`
 * may be 1440: midnight at the end of the day). A time skipped by a daylight-saving change is moved
 * forward by the change (02:30 on a spring-forward night is 03:30); a repeated time is its first
 * occurrence.
 */
export function instantOf(year: number, month: number, day: number, minutes: number, timeZone: string): number {
  const local = Date.UTC(year, month - 1, day, 0, minutes)
  const before = local - offsetAt(local - 86_400_000, timeZone)
  const after = local - offsetAt(local + 86_400_000, timeZone)
  if (before === after) return before
  // Around a change the offset differs on either side: take the earliest reading that shows the time.
  const candidates = [before, after].sort((a, b) => a - b)
  for (const at of candidates) if (at + offsetAt(at, timeZone) === local) return at
  // Skipped: the wall clock jumps over it, so it is read with the offset before the change.
  return Math.max(before, after)
}

/** The calendar date `days` after the given one (negative: before), as the Gregorian calendar counts. */
export function addDays(
  year: number,
  month: number,
  day: number,
  days: number,
): { year: number; month: number; day: number } {
  const date = new Date(Date.UTC(year, month - 1, day + days))
  return { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate() }
}
