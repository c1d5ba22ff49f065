// The existing-transaction exception to prior consent (정보통신망법 제50조 제1항 제1호, 시행령 제61조 제1항):
// within six months after the transaction ended. Pure.
import { addDays, instantOf, wallTimeAt } from '../zoned-time.js'

const SEOUL = 'Asia/Seoul'

/**
 * The last instant (epoch ms, inclusive) the exception covers for a transaction that ended at
 * `endedAtMs`: six months counted as the Civil Act counts (민법 제157조: the day it ended is not
 * counted; 제160조: the period ends with the day before the corresponding day, or with the last
 * day of the month when that month has no such day), on the calendar in Seoul. A transaction
 * ending on 15 January at 10:00 is covered until 15 July 23:59:59.999; one ending on 31 August,
 * until 28 (or 29) February.
 */
export function transactionExceptionEnds(endedAtMs: number): number {
  const ended = wallTimeAt(endedAtMs, SEOUL)
  // Counting starts the next day; the period ends at the end of the day before the corresponding
  // day six months on from that start, which is the day six months on from the end itself.
  let month = ended.month + 6
  let year = ended.year
  if (month > 12) {
    month -= 12
    year += 1
  }
  const lastDay = new Date(Date.UTC(year, month, 0)).getUTCDate()
  const day = Math.min(ended.day, lastDay)
  const next = addDays(year, month, day, 1)
  return instantOf(next.year, next.month, next.day, 0, SEOUL) - 1
}

/** True when a transaction that ended at `endedAtMs` still exempts an advertising email sent at `nowMs`. */
export function withinTransactionException(endedAtMs: number, nowMs: number): boolean {
  return nowMs <= transactionExceptionEnds(endedAtMs)
}
