// The queue's sending calendar and quiet hours, and each batch recipient's due time, on a fake
// clock: every `now` is passed in and every expected instant written out.
import { describe, expect, test } from 'vitest'
import { createEmailQueue, MailstreamError } from '../../src/index.js'
import { validateJob } from '../../src/job.js'
import { type BatchOptions, batchTemplate, toBatchRecord } from '../../src/queue/batch-input.js'
import { createHold, type Hold, holdJob, sendingHoursSchema } from '../../src/queue/schedule.js'

const at = (iso: string) => Date.parse(iso)
const iso = (ms: number) => (ms === 0 ? 'now' : new Date(ms).toISOString())

const WEEKDAYS_SEOUL = { timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '20:00' }
const rule = (hours: object, quiet = false) => sendingHoursSchema(quiet).parse(hours)
const seoulHold = () => createHold(rule(WEEKDAYS_SEOUL)) as Hold

// 2026-12-04 is a Friday.
const FRIDAY_2200_KST = at('2026-12-04T13:00:00Z')
const MONDAY_0900_KST = '2026-12-07T00:00:00.000Z'

/** The due time of a job of `type` enqueued at `now` with `fields`, through the queue's hold. */
function heldDue(hold: Hold, type: string, fields: object, now: number): string {
  const validated = validateJob({ type, to: 'reader@example.com', subject: 'S', text: 'T', ...fields }, now)
  holdJob(hold, validated)
  return iso(validated.dueAt)
}

describe('sending calendar at enqueue', () => {
  test('moves a newsletter due at 22:00 Seoul on a Friday to 09:00 on Monday', () => {
    const hold = seoulHold()
    const thursday = at('2026-12-03T08:00:00Z') // Thu 17:00 KST
    expect(heldDue(hold, 'newsletter', { sendAt: FRIDAY_2200_KST }, thursday)).toBe(MONDAY_0900_KST)
    // deliverAt 22:00 Seoul asked on Friday afternoon: tonight 22:00, then held.
    const friday = at('2026-12-04T05:00:00Z') // Fri 14:00 KST
    expect(heldDue(hold, 'newsletter', { deliverAt: { local: '22:00', timeZone: 'Asia/Seoul' } }, friday)).toBe(
      MONDAY_0900_KST,
    )
    // Enqueued now at 22:00 on a Tuesday: due at 09:00 on Wednesday.
    expect(heldDue(hold, 'newsletter', {}, at('2026-12-08T13:00:00Z'))).toBe('2026-12-09T00:00:00.000Z')
  })

  test('leaves a newsletter inside the hours, and transactional and other types, as they are', () => {
    const hold = seoulHold()
    const wednesdayNoon = at('2026-12-09T03:00:00Z') // Wed 12:00 KST
    expect(heldDue(hold, 'newsletter', {}, wednesdayNoon)).toBe('now')
    expect(heldDue(hold, 'verification-code', {}, FRIDAY_2200_KST)).toBe('now')
    expect(heldDue(hold, 'welcome', { delayMs: 60_000 }, FRIDAY_2200_KST)).toBe(iso(FRIDAY_2200_KST + 60_000))
    expect(heldDue(hold, 'receipt', {}, FRIDAY_2200_KST)).toBe('now') // not in types
  })

  test('types chooses the held types of enqueue; enqueueBatch jobs are held whatever their type', () => {
    const hold = createHold(rule({ ...WEEKDAYS_SEOUL, types: ['digest', 'sequence'] })) as Hold
    expect(heldDue(hold, 'sequence', {}, FRIDAY_2200_KST)).toBe(MONDAY_0900_KST)
    expect(heldDue(hold, 'newsletter', {}, FRIDAY_2200_KST)).toBe('now')
    expect(hold.holderFor('announcement', true)?.(0, FRIDAY_2200_KST)).toBe(at(MONDAY_0900_KST))
    expect(hold.holderFor('verification-code', true)).toBeUndefined()
  })

  test('quiet hours hold mail to their end; with a calendar, to the first time both allow', () => {
    const quiet = createHold(undefined, rule({ timeZone: 'Asia/Seoul', from: '21:00', to: '08:00' }, true)) as Hold
    expect(heldDue(quiet, 'newsletter', {}, FRIDAY_2200_KST)).toBe('2026-12-04T23:00:00.000Z') // Sat 08:00 KST
    const both = createHold(
      rule(WEEKDAYS_SEOUL),
      rule({ timeZone: 'Asia/Seoul', days: 'mon', from: '00:00', to: '12:00' }, true),
    ) as Hold
    expect(heldDue(both, 'newsletter', {}, FRIDAY_2200_KST)).toBe('2026-12-07T03:00:00.000Z') // Mon 12:00 KST
  })

  test('a calendar in New York follows its daylight saving', () => {
    const hold = createHold(rule({ timeZone: 'America/New_York', days: 'mon-fri', from: '09:00', to: '17:00' })) as Hold
    // Fri 2026-03-06 18:00 EST: next opening Mon 2026-03-09 09:00 EDT (13:00Z, not 14:00Z).
    expect(heldDue(hold, 'newsletter', {}, at('2026-03-06T23:00:00Z'))).toBe('2026-03-09T13:00:00.000Z')
    // Fri 2026-10-30 18:00 EDT: Mon 2026-11-02 09:00 EST (14:00Z).
    expect(heldDue(hold, 'newsletter', {}, at('2026-10-30T22:00:00Z'))).toBe('2026-11-02T14:00:00.000Z')
  })
})

describe('options', () => {
  const configError = (options: object): MailstreamError => {
    try {
      createEmailQueue({ redis: 'redis://127.0.0.1:1', ...options })
    } catch (error) {
      expect(error).toBeInstanceOf(MailstreamError)
      return error as MailstreamError
    }
    throw new Error('expected E_CONFIG')
  }

  test('bad hours are E_CONFIG naming the field, before any connection is made', () => {
    const cases: [object, string][] = [
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, timeZone: 'Asia/Nowhere' } }, 'sendingCalendar.timeZone'],
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, from: '9' } }, 'sendingCalendar.from'],
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, to: '09:00' } }, 'sendingCalendar.to'],
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, days: 'weekdays' } }, 'sendingCalendar.days'],
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, tz: 'UTC' } }, 'sendingCalendar.tz'],
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, types: ['verification-code'] } }, 'sendingCalendar.types.0'],
      [{ sendingCalendar: { ...WEEKDAYS_SEOUL, types: [] } }, 'sendingCalendar.types'],
      [{ quietHours: { timeZone: 'UTC', from: '25:00', to: '08:00' } }, 'quietHours.from'],
      [{ sendingCalendar: 'mon-fri' }, 'sendingCalendar'],
      [
        {
          sendingCalendar: WEEKDAYS_SEOUL,
          quietHours: { timeZone: 'Asia/Seoul', from: '08:00', to: '21:00' },
        },
        'quietHours',
      ],
    ]
    for (const [options, field] of cases) {
      const error = configError(options)
      expect(error, field).toMatchObject({ code: 'E_CONFIG', field })
      expect(error.message).toContain(field)
    }
  })
})

describe('batch recipients', () => {
  const startedAt = at('2026-12-03T08:00:30Z') // Thu: 17:00 Seoul, 03:00 New York, just after 09:00 in Berlin
  const template = (options: BatchOptions, hold?: Hold) =>
    batchTemplate('issue-7', { subject: 'Issue 7', text: 'Hi', ...options }, hold, startedAt)
  const dueOf = (options: BatchOptions, built: unknown, hold?: Hold, index = 0) =>
    iso(toBatchRecord(template(options, hold), built, index).dueAt)
  const nine = { local: '09:00', timeZone: 'Asia/Seoul' }

  test('each recipient gets the batch time in its own zone; the batch zone is the default', () => {
    const options = { deliverAt: nine }
    expect(dueOf(options, 'a@example.com')).toBe('2026-12-04T00:00:00.000Z') // 09:00 KST tomorrow
    expect(dueOf(options, { to: 'b@example.com', timeZone: 'America/New_York' })).toBe('2026-12-03T14:00:00.000Z')
    expect(dueOf(options, { to: 'c@example.com', timeZone: 'Europe/Berlin' })).toBe('2026-12-04T08:00:00.000Z')
    expect(dueOf(options, { to: 'd@example.com', deliverAt: { local: '18:30', timeZone: 'UTC' } })).toBe(
      '2026-12-03T18:30:00.000Z',
    )
    // Without a batch deliverAt, a recipient's own still counts.
    expect(dueOf({}, { to: 'e@example.com', deliverAt: nine })).toBe('2026-12-04T00:00:00.000Z')
    expect(dueOf({}, { to: 'f@example.com' })).toBe('now')
  })

  test('the calendar holds each recipient after its own time', () => {
    const hold = seoulHold()
    // 09:00 in New York is 23:00 in Seoul: held to Friday 09:00 KST.
    const options = { deliverAt: nine }
    expect(dueOf(options, { to: 'b@example.com', timeZone: 'America/New_York' }, hold)).toBe('2026-12-04T00:00:00.000Z')
    expect(dueOf(options, 'a@example.com', hold)).toBe('2026-12-04T00:00:00.000Z')
    expect(dueOf({ type: 'verification-code' }, 'a@example.com', hold)).toBe('now')
    // Thu 17:00 KST, inside the hours: a batch without a time goes now.
    expect(dueOf({}, 'a@example.com', hold)).toBe('now')
  })

  test('bad recipient times are E_VALIDATION naming the recipient and field', () => {
    const bad = (options: BatchOptions, built: object, field: string) => {
      let error: unknown
      try {
        toBatchRecord(template(options), built, 3)
      } catch (caught) {
        error = caught
      }
      expect(error).toBeInstanceOf(MailstreamError)
      expect(error, field).toMatchObject({ code: 'E_VALIDATION', field: `recipients.3.${field}` })
    }
    const to = 'a@example.com'
    bad({ deliverAt: nine }, { to, timeZone: 'Mars/Olympus' }, 'timeZone')
    bad({ deliverAt: nine }, { to, timeZone: 42 }, 'timeZone')
    bad({}, { to, timeZone: 'Asia/Seoul' }, 'timeZone') // no local time to use
    bad({}, { to, deliverAt: { local: '9am', timeZone: 'UTC' } }, 'deliverAt.local')
    bad({}, { to, deliverAt: { local: '09:00', timeZone: 'Nowhere' } }, 'deliverAt.timeZone')
    bad({}, { to, deliverAt: { local: '09:00', timeZone: 'UTC', at: 1 } }, 'deliverAt.at')
    bad({}, { to, deliverAt: '09:00' }, 'deliverAt')
    bad({}, { to, deliverAt: nine, timeZone: 'UTC' }, 'timeZone')
    bad({ sendAt: '2026-12-05T00:00:00Z' }, { to, deliverAt: nine }, 'deliverAt')
    bad({}, { to, zone: 'UTC' }, 'zone')
  })

  test('bad batch deliverAt is refused as a job field would be', () => {
    expect(() => template({ deliverAt: { local: '09:00', timeZone: 'Seoul' } })).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'deliverAt.timeZone' }),
    )
    expect(() => template({ deliverAt: nine, delayMs: 1000 })).toThrow(expect.objectContaining({ field: 'deliverAt' }))
  })
})
