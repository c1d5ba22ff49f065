import { describe, expect, it } from 'vitest'
import { createQuietHours, createSendingCalendar, nextLocalTime } from '../src/calendar.js'
import { MailstreamError } from '../src/errors.js'
import { instantOf, wallTimeAt } from '../src/zoned-time.js'

const at = (iso: string) => Date.parse(iso)
const iso = (ms: number) => new Date(ms).toISOString()

describe('wall-clock time in a zone', () => {
  it('reads and builds Seoul time (UTC+9, no daylight saving)', () => {
    expect(wallTimeAt(at('2026-12-04T23:30:00Z'), 'Asia/Seoul')).toEqual({
      year: 2026,
      month: 12,
      day: 5,
      hour: 8,
      minute: 30,
      weekday: 6,
    })
    expect(iso(instantOf(2026, 12, 5, 8 * 60 + 30, 'Asia/Seoul'))).toBe('2026-12-04T23:30:00.000Z')
  })

  it('moves a time skipped by spring-forward to after the gap, and takes the first of a repeated time', () => {
    // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT; 2026-11-01: 02:00 EDT falls back to 01:00 EST.
    expect(iso(instantOf(2026, 3, 8, 2 * 60 + 30, 'America/New_York'))).toBe('2026-03-08T07:30:00.000Z')
    expect(iso(instantOf(2026, 11, 1, 60 + 30, 'America/New_York'))).toBe('2026-11-01T05:30:00.000Z')
    expect(iso(instantOf(2026, 3, 8, 24 * 60, 'America/New_York'))).toBe('2026-03-09T04:00:00.000Z')
  })
})

describe('nextLocalTime', () => {
  it('is the next time the zone reads the wall-clock time, today or tomorrow', () => {
    expect(iso(nextLocalTime('09:00', 'Asia/Seoul', at('2026-12-02T23:00:00Z')))).toBe('2026-12-03T00:00:00.000Z')
    expect(iso(nextLocalTime('09:00', 'Asia/Seoul', at('2026-12-03T00:00:01Z')))).toBe('2026-12-04T00:00:00.000Z')
    expect(iso(nextLocalTime('09:00', 'Asia/Seoul', at('2026-12-03T00:00:00Z')))).toBe('2026-12-03T00:00:00.000Z')
  })

  it('keeps 09:00 local across a daylight-saving change', () => {
    const saturday = at('2026-03-07T15:00:00Z') // 10:00 EST
    expect(iso(nextLocalTime('09:00', 'America/New_York', saturday))).toBe('2026-03-08T13:00:00.000Z') // 09:00 EDT
    expect(iso(nextLocalTime('09:00', 'Europe/London', at('2026-10-25T00:30:00Z')))).toBe('2026-10-25T09:00:00.000Z')
  })

  it('refuses a bad time or zone with the field', () => {
    expect(() => nextLocalTime('9am', 'Asia/Seoul', 0)).toThrow(expect.objectContaining({ field: 'deliverAt.local' }))
    expect(() => nextLocalTime('09:00', 'Mars/Olympus', 0)).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'deliverAt.timeZone' }),
    )
  })
})

describe('createSendingCalendar', () => {
  const weekdays = createSendingCalendar({ timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '20:00' })

  it('is open inside the hours and holds other times to the next opening', () => {
    const fridayEvening = at('2026-12-04T10:59:00Z') // Fri 19:59 KST
    expect(weekdays.isOpen(fridayEvening)).toBe(true)
    expect(weekdays.nextOpen(fridayEvening)).toBe(fridayEvening)
    const fridayClose = at('2026-12-04T11:00:00Z') // Fri 20:00 KST: closed until Monday 09:00
    expect(weekdays.isOpen(fridayClose)).toBe(false)
    expect(iso(weekdays.nextOpen(fridayClose))).toBe('2026-12-07T00:00:00.000Z')
    expect(iso(weekdays.nextOpen(at('2026-12-05T01:00:00Z')))).toBe('2026-12-07T00:00:00.000Z') // Saturday
    expect(iso(weekdays.nextOpen(at('2026-12-07T23:59:00Z')))).toBe('2026-12-08T00:00:00.000Z') // Tue 08:59
  })

  it('runs a window past midnight and counts it from the day it starts', () => {
    const nights = createSendingCalendar({ timeZone: 'UTC', days: 'fri', from: '22:00', to: '02:00' })
    expect(nights.isOpen(at('2026-12-05T01:00:00Z'))).toBe(true) // Saturday 01:00, Friday's window
    expect(nights.isOpen(at('2026-12-06T01:00:00Z'))).toBe(false) // Sunday 01:00
    expect(iso(nights.nextOpen(at('2026-12-05T02:00:00Z')))).toBe('2026-12-11T22:00:00.000Z')
  })

  it('parses day lists and wrapped ranges', () => {
    const weekend = createSendingCalendar({ timeZone: 'UTC', days: 'sat, sun', from: '10:00', to: '24:00' })
    expect(weekend.isOpen(at('2026-12-05T23:59:00Z'))).toBe(true)
    expect(iso(weekend.nextOpen(at('2026-12-04T12:00:00Z')))).toBe('2026-12-05T10:00:00.000Z')
    const friToMon = createSendingCalendar({ timeZone: 'UTC', days: 'fri-mon', from: '00:00', to: '24:00' })
    expect([2, 3, 4, 5, 6, 7, 8].map((day) => friToMon.isOpen(Date.UTC(2026, 11, day, 12)))).toEqual([
      false,
      false,
      true,
      true,
      true,
      true,
      false,
    ])
  })

  it('refuses bad hours with a typed error naming the field', () => {
    const bad = (hours: object, field: string) => {
      let error: unknown
      try {
        createSendingCalendar(hours as never, 'calendar', 'E_CONFIG')
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(MailstreamError)
      expect(error).toMatchObject({ code: 'E_CONFIG', field })
    }
    bad({ timeZone: 'Nowhere/City', from: '09:00', to: '10:00' }, 'calendar.timeZone')
    bad({ timeZone: 'UTC', from: '25:00', to: '10:00' }, 'calendar.from')
    bad({ timeZone: 'UTC', from: '09:00', to: '09:00' }, 'calendar.to')
    bad({ timeZone: 'UTC', days: 'funday', from: '09:00', to: '10:00' }, 'calendar.days')
    bad({ timeZone: 'UTC', from: '09:00', to: '10:00', tz: 'x' }, 'calendar.tz')
  })
})

describe('createQuietHours', () => {
  const quiet = createQuietHours({ timeZone: 'Asia/Seoul', from: '21:00', to: '08:00' })

  it('holds mail due in the quiet window to its end, and lets the rest go', () => {
    expect(iso(quiet.nextOpen(at('2026-12-02T14:00:00Z')))).toBe('2026-12-02T23:00:00.000Z') // 23:00 -> 08:00 KST
    expect(iso(quiet.nextOpen(at('2026-12-02T22:59:00Z')))).toBe('2026-12-02T23:00:00.000Z') // 07:59 -> 08:00
    expect(quiet.isOpen(at('2026-12-02T23:00:00Z'))).toBe(true) // 08:00
    expect(quiet.isOpen(at('2026-12-02T11:59:00Z'))).toBe(true) // 20:59
    expect(quiet.isOpen(at('2026-12-02T12:00:00Z'))).toBe(false) // 21:00
  })

  it('crosses back-to-back quiet windows', () => {
    const evenings = createQuietHours({ timeZone: 'UTC', from: '20:00', to: '24:00' })
    const mornings = createQuietHours({ timeZone: 'UTC', from: '00:00', to: '06:00' })
    expect(iso(evenings.nextOpen(at('2026-12-02T21:00:00Z')))).toBe('2026-12-03T00:00:00.000Z')
    expect(iso(mornings.nextOpen(at('2026-12-03T00:00:00Z')))).toBe('2026-12-03T06:00:00.000Z')
  })
})
