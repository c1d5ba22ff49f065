// `deliverAt` on a job: validated, and turned into the instant the reader's clock shows the time,
// on a fake clock (each `now` passed in), across daylight-saving changes.
import { describe, expect, test } from 'vitest'
import { MailstreamError } from '../src/index.js'
import { validateJob } from '../src/job.js'
import { wallTimeAt } from '../src/zoned-time.js'

const at = (iso: string) => Date.parse(iso)
const iso = (ms: number) => new Date(ms).toISOString()
const job = (deliverAt: unknown, extra: object = {}) => ({
  type: 'reminder',
  to: 'reader@example.com',
  subject: 'Today',
  text: 'Hi',
  deliverAt,
  ...extra,
})
const dueAt = (local: string, timeZone: string, now: number) => iso(validateJob(job({ local, timeZone }), now).dueAt)

function rejection(input: unknown): MailstreamError {
  try {
    validateJob(input, at('2026-12-03T00:00:00Z'))
  } catch (error) {
    expect(error).toBeInstanceOf(MailstreamError)
    return error as MailstreamError
  }
  throw new Error('expected the job to be rejected')
}

describe('deliverAt', () => {
  test('is the next time the reader clock shows the time, today or tomorrow', () => {
    const now = at('2026-12-03T08:00:00Z') // 17:00 in Seoul, 03:00 in New York, 09:00 in Berlin
    expect(dueAt('18:00', 'Asia/Seoul', now)).toBe('2026-12-03T09:00:00.000Z')
    expect(dueAt('09:00', 'Asia/Seoul', now)).toBe('2026-12-04T00:00:00.000Z') // passed: tomorrow
    expect(dueAt('09:00', 'America/New_York', now)).toBe('2026-12-03T14:00:00.000Z') // EST, UTC-5
    expect(dueAt('09:30', 'Europe/Berlin', now)).toBe('2026-12-03T08:30:00.000Z') // CET, UTC+1
  })

  test('a time that is now is due now (0), not tomorrow', () => {
    expect(validateJob(job({ local: '09:00', timeZone: 'Asia/Seoul' }), at('2026-12-03T00:00:00Z')).dueAt).toBe(0)
  })

  test('New York spring-forward (2026-03-08): 09:00 is EDT the next morning, 02:30 does not exist and is 03:30', () => {
    const saturday = at('2026-03-07T20:00:00Z') // Sat 15:00 EST
    expect(dueAt('09:00', 'America/New_York', saturday)).toBe('2026-03-08T13:00:00.000Z') // 09:00 EDT, UTC-4
    const midnight = at('2026-03-08T05:00:00Z') // Sun 00:00 EST
    expect(dueAt('02:30', 'America/New_York', midnight)).toBe('2026-03-08T07:30:00.000Z') // 03:30 EDT
    // Seoul has no daylight saving: the same evening, 09:00 KST is UTC+9 as always.
    expect(dueAt('09:00', 'Asia/Seoul', saturday)).toBe('2026-03-08T00:00:00.000Z')
  })

  test('New York fall-back (2026-11-01): 09:00 is EST, and a repeated 01:30 is its first occurrence', () => {
    const saturday = at('2026-10-31T14:00:00Z') // Sat 10:00 EDT
    expect(dueAt('09:00', 'America/New_York', saturday)).toBe('2026-11-01T14:00:00.000Z') // 09:00 EST, UTC-5
    const midnight = at('2026-11-01T04:00:00Z') // Sun 00:00 EDT
    expect(dueAt('01:30', 'America/New_York', midnight)).toBe('2026-11-01T05:30:00.000Z') // 01:30 EDT
    // Asked after the first 01:30, the clock reads 01:30 once more an hour later (EST).
    expect(dueAt('01:30', 'America/New_York', at('2026-11-01T05:45:00Z'))).toBe('2026-11-01T06:30:00.000Z')
    expect(dueAt('01:30', 'America/New_York', at('2026-11-01T06:15:00Z'))).toBe('2026-11-01T06:30:00.000Z')
    expect(dueAt('01:30', 'America/New_York', at('2026-11-01T06:31:00Z'))).toBe('2026-11-02T06:30:00.000Z')
    // Lord Howe Island falls back half an hour (02:00 +11 to 01:30 +10:30) on 2026-04-05.
    expect(dueAt('01:45', 'Australia/Lord_Howe', at('2026-04-04T14:50:00Z'))).toBe('2026-04-04T15:15:00.000Z')
  })

  test('Europe/Berlin keeps 09:00 local across both changes of 2026 (03-29 and 10-25)', () => {
    expect(dueAt('09:00', 'Europe/Berlin', at('2026-03-28T12:00:00Z'))).toBe('2026-03-29T07:00:00.000Z') // CEST
    expect(dueAt('09:00', 'Europe/Berlin', at('2026-10-24T12:00:00Z'))).toBe('2026-10-25T08:00:00.000Z') // CET
    const due = validateJob(job({ local: '09:00', timeZone: 'Europe/Berlin' }), at('2026-10-24T12:00:00Z')).dueAt
    expect(wallTimeAt(due, 'Europe/Berlin')).toMatchObject({ day: 25, hour: 9, minute: 0 })
  })

  test('the stored job does not carry deliverAt: the due time is fixed at enqueue', () => {
    const { job: stored, payload } = validateJob(job({ local: '09:00', timeZone: 'Asia/Seoul' }), 0)
    expect(stored).not.toHaveProperty('deliverAt')
    expect(payload).not.toContain('deliverAt')
  })

  test('refuses a bad time, zone or shape with the field', () => {
    expect(rejection(job({ local: '9:00', timeZone: 'Asia/Seoul' }))).toMatchObject({
      code: 'E_VALIDATION',
      field: 'deliverAt.local',
    })
    expect(rejection(job({ local: '24:00', timeZone: 'Asia/Seoul' })).field).toBe('deliverAt.local')
    expect(rejection(job({ local: '09:00', timeZone: 'Asia/Busan' })).field).toBe('deliverAt.timeZone')
    expect(rejection(job({ local: '09:00', timeZone: 'x'.repeat(10_000) })).field).toBe('deliverAt.timeZone')
    expect(rejection(job({ local: '09:00' })).field).toBe('deliverAt.timeZone')
    expect(rejection(job({ local: '09:00', timeZone: 'UTC', zone: 'UTC' })).field).toBe('deliverAt.zone')
    expect(rejection(job('09:00')).field).toBe('deliverAt')
  })

  test('refuses deliverAt together with sendAt or delayMs, naming deliverAt', () => {
    const seoul = { local: '09:00', timeZone: 'Asia/Seoul' }
    const withSendAt = rejection(job(seoul, { sendAt: '2026-12-04T00:00:00Z' }))
    expect(withSendAt).toMatchObject({ code: 'E_VALIDATION', field: 'deliverAt' })
    expect(withSendAt.message).toContain('not two of them')
    expect(rejection(job(seoul, { delayMs: 1000 })).field).toBe('deliverAt')
  })
})
