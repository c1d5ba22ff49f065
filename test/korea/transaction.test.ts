import { describe, expect, it } from 'vitest'
import { transactionExceptionEnds, withinTransactionException } from '../../src/korea/transaction.js'

/** Epoch ms of a wall-clock time in Seoul (UTC+9, no daylight saving). */
const seoul = (iso: string) => new Date(`${iso}+09:00`).getTime()

describe('the six-month transaction exception', () => {
  it('lasts to the end of the corresponding day six months on, in Seoul', () => {
    const ended = seoul('2026-01-15T10:00:00')
    expect(transactionExceptionEnds(ended)).toBe(seoul('2026-07-15T23:59:59.999'))
  })

  it('is good just inside the boundary and gone just outside it', () => {
    const ended = seoul('2026-01-15T10:00:00')
    expect(withinTransactionException(ended, seoul('2026-07-15T23:59:59.999'))).toBe(true)
    expect(withinTransactionException(ended, seoul('2026-07-16T00:00:00'))).toBe(false)
  })

  it('ends with the last day of a month that has no corresponding day', () => {
    expect(transactionExceptionEnds(seoul('2026-08-31T12:00:00'))).toBe(seoul('2027-02-28T23:59:59.999'))
    expect(transactionExceptionEnds(seoul('2027-08-30T12:00:00'))).toBe(seoul('2028-02-29T23:59:59.999'))
  })

  it('counts by the calendar in Seoul, not in UTC', () => {
    // 2026-01-31 20:00 UTC is already 1 February in Seoul.
    const ended = Date.UTC(2026, 0, 31, 20)
    expect(transactionExceptionEnds(ended)).toBe(seoul('2026-08-01T23:59:59.999'))
  })

  it('crosses the year', () => {
    expect(transactionExceptionEnds(seoul('2026-11-10T09:00:00'))).toBe(seoul('2027-05-10T23:59:59.999'))
  })
})
