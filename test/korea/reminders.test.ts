import { describe, expect, test } from 'vitest'
import { createEmailQueue, createTemplateRenderer, MailstreamError, verifyUnsubscribeToken } from '../../src/index.js'
import { verifyConsentActionToken } from '../../src/korea/links.js'
import {
  type ConsentStore,
  consentsDue,
  type ListConsentsOptions,
  reminderSchedule,
  runConsentReminders,
} from '../../src/korea/reminders.js'
import type { AdvertisingConsent } from '../../src/korea/types.js'
import { harness } from '../helpers/queue.js'
import { connect, uniquePrefix } from '../helpers/redis.js'

const redis = connect()

const SECRET = 'consent-secret-0123456789'
const sender = {
  name: '밸리티',
  email: 'privacy@vality.kr',
  phone: '02-123-4567',
  address: '서울특별시 중구 세종대로 1',
}
const links = { secret: SECRET, url: 'https://vality.kr/consent' }

/** Epoch ms of a wall-clock time in Seoul (UTC+9). */
const seoul = (text: string) => Date.parse(`${text}+09:00`)
/** Epoch ms of a stored date; an unreadable one as 0, so that the store returns it and the run reports it. */
const ms = (value: Date | number | string | undefined) => (value === undefined ? 0 : new Date(value).getTime() || 0)

/**
 * The app's store, in memory: a keyset cursor (the last address of the page), so that records that
 * `markReminded` takes out of the due set during a run do not shift the pages.
 */
function memoryStore(records: AdvertisingConsent[]) {
  const rows = new Map(records.map((record) => [record.address.toLowerCase(), { ...record }]))
  const calls: ListConsentsOptions[] = []
  const marked: [string, number][] = []
  const store: ConsentStore & { failMarks: number } = {
    failMarks: 0,
    async listConsents(options) {
      calls.push(options)
      const cutoff = options.consentedOrRemindedBefore.getTime()
      const after = options.cursor ?? ''
      const due = [...rows.entries()]
        .filter(([address, row]) => address > after && Math.max(ms(row.consentedAt), ms(row.lastReminderAt)) < cutoff)
        .sort(([a], [b]) => (a < b ? -1 : 1))
      const page = due.slice(0, options.limit)
      const more = due.length > options.limit
      return { consents: page.map(([, row]) => ({ ...row })), ...(more && { cursor: page.at(-1)?.[0] }) }
    },
    async markReminded(address, at) {
      if (store.failMarks > 0) {
        store.failMarks--
        throw new Error('database is down')
      }
      const row = rows.get(address)
      if (row) row.lastReminderAt = at
      marked.push([address, at.getTime()])
    },
  }
  return { store, rows, calls, marked }
}

describe('reminderSchedule (Asia/Seoul calendar months)', () => {
  test('due 23 months after the consent, before the two-year anniversary; month ends clamp', () => {
    const leap = reminderSchedule({ address: 'A@Example.com', consentedAt: seoul('2024-02-29T10:00:00') })
    expect(leap.address).toBe('a@example.com')
    expect(leap.dueAt).toBe(seoul('2026-01-29T00:00:00'))
    expect(leap.deadline).toBe(seoul('2026-02-28T00:00:00'))
    const monthEnd = reminderSchedule({ address: 'b@example.com', consentedAt: seoul('2024-03-31T23:00:00') })
    expect(monthEnd.dueAt).toBe(seoul('2026-02-28T00:00:00'))
    expect(monthEnd.deadline).toBe(seoul('2026-03-31T00:00:00'))
    // 29 February 20:00 UTC is 1 March in Seoul: the Seoul day counts.
    const utcLeap = reminderSchedule({ address: 'c@example.com', consentedAt: '2024-02-29T20:00:00Z' })
    expect(utcLeap.dueAt).toBe(seoul('2026-02-01T00:00:00'))
    expect(reminderSchedule({ address: 'd@example.com', consentedAt: seoul('2025-01-31T09:00:00') }).dueAt).toBe(
      seoul('2026-12-31T00:00:00'),
    )
  })

  test('after a reminder, 23 months from the reminder; the deadline is the next anniversary of the consent', () => {
    const after = reminderSchedule({
      address: 'a@example.com',
      consentedAt: seoul('2024-02-29T10:00:00'),
      lastReminderAt: new Date(seoul('2026-01-29T09:00:00')),
    })
    expect(after.since).toBe(seoul('2026-01-29T09:00:00'))
    expect(after.dueAt).toBe(seoul('2027-12-29T00:00:00'))
    expect(after.deadline).toBe(seoul('2028-02-29T00:00:00'))
    // A reminder older than the consent (consented again since) counts for nothing.
    const again = reminderSchedule({
      address: 'a@example.com',
      consentedAt: seoul('2025-05-10T10:00:00'),
      lastReminderAt: seoul('2024-01-01T10:00:00'),
    })
    expect(again.lastReminderAt).toBeUndefined()
    expect(again.dueAt).toBe(seoul('2027-04-10T00:00:00'))
    expect(reminderSchedule({ address: 'a@example.com', consentedAt: 0 }, { dueAfterMonths: 1 }).dueAt).toBe(
      seoul('1970-02-01T00:00:00'),
    )
  })

  test('a bad date or address is E_VALIDATION naming it', () => {
    expect(() => reminderSchedule({ address: 'a@example.com', consentedAt: 'soon' })).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'consentedAt' }),
    )
    expect(() => reminderSchedule({ address: 'nobody', consentedAt: 0 })).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'address' }),
    )
  })
})

describe('runConsentReminders', () => {
  const consents = (): AdvertisingConsent[] => [
    { address: 'leap@example.com', consentedAt: seoul('2024-02-29T10:00:00') },
    { address: 'march@example.com', consentedAt: new Date(seoul('2024-03-31T23:00:00')).toISOString() },
    { address: 'recent@example.com', consentedAt: seoul('2025-06-01T10:00:00') },
  ]

  test('due at 23 months and not before; once a day; again 23 months after the reminder', async () => {
    const { queue } = harness(redis)
    const { store, rows, marked } = memoryStore(consents())
    const run = (now: number) => runConsentReminders(queue, store, { sender, links, now })

    expect(await run(seoul('2026-01-28T23:59:59'))).toMatchObject({ enqueued: 0, skipped: 0, failed: [] })
    expect(marked).toEqual([])

    const dueDay = seoul('2026-01-29T00:00:00')
    expect(await run(dueDay)).toMatchObject({ enqueued: 1, skipped: 0, complete: true })
    expect(marked).toEqual([['leap@example.com', dueDay]])
    expect(rows.get('leap@example.com')?.lastReminderAt).toEqual(new Date(dueDay))
    // Twice the same day: nothing more.
    expect(await run(dueDay + 6 * 3600_000)).toMatchObject({ enqueued: 0, skipped: 0 })

    expect(await run(seoul('2026-02-28T00:00:00'))).toMatchObject({ enqueued: 1 })
    expect(marked.map(([address]) => address)).toEqual(['leap@example.com', 'march@example.com'])

    // The 2025-06-01 consent is due on 2027-05-01; the first one not again until 23 months after its reminder.
    expect(await run(seoul('2027-12-28T23:00:00'))).toMatchObject({ enqueued: 1 })
    expect(marked.map(([address]) => address)).toEqual(['leap@example.com', 'march@example.com', 'recent@example.com'])
    expect(await run(seoul('2027-12-29T00:00:00'))).toMatchObject({ enqueued: 1 })
    expect(marked.at(-1)).toEqual(['leap@example.com', seoul('2027-12-29T00:00:00')])
  })

  test('markReminded failed after the enqueue: the next run the same day enqueues nothing and marks it', async () => {
    const { queue } = harness(redis)
    const { store, marked } = memoryStore(consents())
    const now = seoul('2026-01-29T08:00:00')
    store.failMarks = 1
    await expect(runConsentReminders(queue, store, { sender, links, now })).rejects.toThrow('database is down')
    expect(marked).toEqual([])
    const second = await runConsentReminders(queue, store, { sender, links, now: now + 3600_000 })
    expect(second).toMatchObject({ enqueued: 0, skipped: 1 })
    expect(marked.map(([address]) => address)).toEqual(['leap@example.com'])
    expect((await queue.stats()).streams.low?.length).toBe(1)
  })

  test('under strictIdempotency too: the retry has freshly signed links, and still sends nothing twice', async () => {
    const prefix = uniquePrefix('remind')
    const queue = createEmailQueue({ redis, prefix, strictIdempotency: true })
    try {
      const { store, marked } = memoryStore(consents())
      const now = seoul('2026-01-29T08:00:00')
      store.failMarks = 1
      await expect(runConsentReminders(queue, store, { sender, links, now })).rejects.toThrow('database is down')
      expect(await runConsentReminders(queue, store, { sender, links, now })).toMatchObject({ enqueued: 0, skipped: 1 })
      expect(marked).toHaveLength(1)
      expect((await queue.stats()).streams.low?.length).toBe(1)
    } finally {
      await queue.close()
    }
  })

  test('the worker sends the reminder: sender, consent date, signed keep and withdraw links (ko and en)', async () => {
    const templates = createTemplateRenderer({ defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' } })
    const h = harness(redis)
    const queue = createEmailQueue({ redis, prefix: h.prefix, templates })
    try {
      const { store } = memoryStore([
        { address: 'Kim@Example.com', consentedAt: seoul('2024-02-29T10:00:00'), name: '김독자' },
        { address: 'lee@example.com', consentedAt: seoul('2024-02-10T10:00:00'), locale: 'en' },
      ])
      const result = await runConsentReminders(queue, store, { sender, links, now: seoul('2026-02-01T09:00:00') })
      expect(result).toMatchObject({ enqueued: 2, failed: [] })
      h.worker({ templates }).start()
      await h.transport.waitForCount(2)
      const ko = h.transport.find({ to: 'kim@example.com' })?.message
      expect(ko?.subject).toBe('[밸리티] 광고성 정보 수신동의 여부 확인 안내')
      expect(ko?.subject).not.toContain('(광고)')
      expect(ko?.priority).toBe('low')
      expect(ko?.to).toEqual([{ name: '김독자', address: 'kim@example.com' }])
      expect(ko?.text).toContain('수신동의 일자: 2024년 2월 29일')
      expect(ko?.text).toContain('전송자: 밸리티')
      const html = ko?.html as string
      const tokens = [...html.matchAll(/href="https:\/\/vality\.kr\/consent\?token=([\w-]+)"/g)].map((m) => m[1])
      // Each link is there twice: the button (or link) and the address spelled out.
      expect(tokens).toHaveLength(4)
      const actions = new Set(tokens.map((token) => JSON.stringify(verifyConsentActionToken(token, SECRET))))
      expect([...actions].sort()).toEqual(
        [
          JSON.stringify({ ok: true, email: 'kim@example.com', action: 'keep' }),
          JSON.stringify({ ok: true, email: 'kim@example.com', action: 'withdraw' }),
        ].sort(),
      )
      // A consent link is no unsubscribe token, even under the same secret.
      expect(verifyUnsubscribeToken(tokens[0], SECRET)).toEqual({ ok: false, reason: 'signature' })
      const en = h.transport.find({ to: 'lee@example.com' })?.message
      expect(en?.subject).toBe('[밸리티] Please confirm your consent to advertising email')
      expect(en?.text).toContain('Date of consent: February 10, 2024')
      expect(en?.text).toContain('Withdraw my consent')
    } finally {
      await queue.close()
      await templates.close()
    }
  })

  test('pages through the store with its cursor; a bad record is reported and the others go on', async () => {
    const { queue } = harness(redis)
    const records: AdvertisingConsent[] = Array.from({ length: 7 }, (_, i) => ({
      address: `reader${i}@example.com`,
      consentedAt: seoul('2024-01-15T10:00:00'),
    }))
    records.push({ address: 'broken', consentedAt: seoul('2024-01-15T10:00:00') })
    records.push({ address: 'later@example.com', consentedAt: 'not a date' })
    const { store, calls } = memoryStore(records)
    const result = await runConsentReminders(queue, store, {
      sender,
      links: {
        keepUrl: (consent) => `https://vality.kr/keep?e=${encodeURIComponent(consent.address)}`,
        withdrawUrl: (consent) => `https://vality.kr/withdraw?e=${encodeURIComponent(consent.address)}`,
      },
      now: seoul('2026-01-01T12:00:00'),
      batchSize: 3,
    })
    expect(result.enqueued).toBe(7)
    expect(result.failed.map((one) => one.address).sort()).toEqual(['broken', 'later@example.com'])
    expect(calls.length).toBeGreaterThanOrEqual(3)
    expect(calls.every((call) => call.limit === 3)).toBe(true)
    // The store's cutoff is never earlier than the exact one (23 months before now, in Seoul).
    expect(calls[0]?.consentedOrRemindedBefore.getTime()).toBeGreaterThanOrEqual(seoul('2024-02-01T00:00:00'))
  })

  test('a store that does not move its cursor, or does not answer, ends the run with an error', async () => {
    const { queue } = harness(redis)
    const stuck: ConsentStore = {
      listConsents: async () => ({ consents: [], cursor: 'same' }),
      markReminded: async () => {},
    }
    // The first call gets no cursor and answers 'same'; the second gets 'same' and answers it again.
    await expect(runConsentReminders(queue, stuck, { sender, links })).rejects.toMatchObject({ code: 'E_CONFIG' })
    const silent: ConsentStore = { listConsents: () => new Promise(() => {}), markReminded: async () => {} }
    const started = Date.now()
    await expect(runConsentReminders(queue, silent, { sender, links, storeTimeoutMs: 50 })).rejects.toMatchObject({
      code: 'E_TIMEOUT',
    })
    expect(Date.now() - started).toBeLessThan(2000)
  })

  test('bad options are E_CONFIG or E_VALIDATION naming the field', async () => {
    const { queue } = harness(redis)
    const { store } = memoryStore([])
    const failing = [
      [{ sender, links: { secret: 'short', url: 'https://vality.kr/c' } }, 'links.secret'],
      [{ sender, links: { secret: SECRET, url: 'javascript:alert(1)' } }, 'links.url'],
      [{ sender, links: {} }, 'links'],
      [{ sender, links, dueAfterMonths: 24 }, 'dueAfterMonths'],
      [{ sender, links, batchSize: 0 }, 'batchSize'],
      [{ sender: { name: '' }, links }, 'sender.name'],
    ] as const
    for (const [options, field] of failing) {
      const error = await runConsentReminders(queue, store, options as never).catch((caught: unknown) => caught)
      expect(error, field).toBeInstanceOf(MailstreamError)
      expect(error).toMatchObject({ field })
    }
  })
})

describe('consentsDue', () => {
  test('what falls due within N days, soonest first, overdue marked; reads only', async () => {
    const { store, marked } = memoryStore([
      { address: 'leap@example.com', consentedAt: seoul('2024-02-29T10:00:00') },
      { address: 'march@example.com', consentedAt: seoul('2024-03-31T23:00:00') },
      { address: 'old@example.com', consentedAt: seoul('2023-12-01T10:00:00') },
      { address: 'recent@example.com', consentedAt: seoul('2025-06-01T10:00:00') },
    ])
    const now = seoul('2026-01-30T12:00:00')
    const { consents, complete, invalid } = await consentsDue(store, { now, days: 30 })
    expect(complete).toBe(true)
    expect(invalid).toEqual([])
    expect(consents.map((one) => [one.address, one.overdue])).toEqual([
      ['old@example.com', true],
      ['leap@example.com', true],
      ['march@example.com', false],
    ])
    expect(consents[2]?.dueAt).toBe(seoul('2026-02-28T00:00:00'))
    expect(marked).toEqual([])
    const none = await consentsDue(store, { now, days: 0 })
    expect(none.consents.map((one) => one.address)).toEqual(['old@example.com', 'leap@example.com'])
    const cut = await consentsDue(store, { now, days: 30, limit: 1 })
    expect(cut).toMatchObject({ complete: false })
    expect(cut.consents).toHaveLength(1)
  })
})

describe('consent-reminder template', () => {
  test.each(['ko', 'en'])('%s: keep and withdraw links are required http(s) URLs', async (locale) => {
    const templates = createTemplateRenderer({ defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' } })
    const data = { senderName: 'Vality', consentedDate: '2024-02-29', keepUrl: 'https://vality.kr/k' }
    await expect(templates.render('consent-reminder', data, { locale })).rejects.toMatchObject({
      code: 'E_TEMPLATE',
      field: 'withdrawUrl',
    })
    await expect(
      templates.render('consent-reminder', { ...data, withdrawUrl: 'javascript:alert(1)' }, { locale }),
    ).rejects.toMatchObject({ code: 'E_TEMPLATE', field: 'withdrawUrl' })
  })
})
