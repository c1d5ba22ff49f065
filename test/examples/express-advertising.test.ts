/**
 * The Express example's advertising (정보통신망법 제50조, docs/korea.md) over HTTP against the real
 * PostgreSQL: consents in a table, processing notices, sponsored issues to consenting subscribers
 * only, and the two-yearly reminder run.
 */
import { randomBytes } from 'node:crypto'
import { verifyConsentActionToken } from 'mailstream'
import type { SentMessage } from 'mailstream/memory'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createExpressApp, type ExpressApp } from '../../examples/express/app.js'
import { DEMO_AD_SENDER, loadConfig } from '../../examples/shared/config.js'
import { waitUntil } from '../helpers/redis.js'
import { type Booted, booter, local, postJson, queueIdle, unsubscribeLinkOf } from './contract.js'

const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const schema = `example_ad_${randomBytes(4).toString('hex')}`
const DAY_MS = 24 * 3600_000

afterAll(async () => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await client.end()
})

const boot = booter<ExpressApp>((config, overrides) =>
  createExpressApp({ ...config, databaseUrl }, { ...overrides, schema }),
)

describe('Express: advertising', () => {
  let main: Booted<ExpressApp>
  const [ana, ben, cho] = ['ana@example.com', 'ben@example.com', 'cho@example.com']

  beforeAll(async () => {
    // Quiet hours off: the test runs at any hour of the day in Seoul.
    main = await boot({ config: { advertising: { ...loadConfig({}).advertising, quietHours: false } } })
    for (const email of [ana, ben, cho]) {
      await main.app.store.requestSubscription({ email, locale: 'en' })
      expect(await main.app.store.activate(email)).toBe(true)
    }
  })

  /** Asks for a verification code and reads it from the email, as the subscriber would. */
  async function codeFor(email: string): Promise<string> {
    const before = main.transport.filter({ to: email, type: 'verification-code' }).length
    const issued = await postJson(`${main.url}/api/auth/send-verification-code`, { email })
    expect(issued.status).toBe(202)
    await queueIdle(main.app.service.queue)
    const sent = main.transport.filter({ to: email, type: 'verification-code' })
    expect(sent).toHaveLength(before + 1)
    return /\b(\d{6})\b/.exec((sent.at(-1) as SentMessage).message.subject)?.[1] as string
  }

  const notices = (email: string) => main.transport.filter({ to: email, type: 'consent-notice' })

  async function publish(id: string) {
    const reply = await postJson(`${main.url}/api/issues/${id}/publish`, {
      title: `Issue ${id}`,
      body: 'News first.',
      sponsor: { name: 'Acme Coffee', body: '**20%** off beans this week.' },
    })
    expect(reply.status).toBe(202)
    const result = await reply.json()
    await queueIdle(main.app.service.queue)
    const sent = main.transport.filter({ batchId: `issue-${id}` })
    return { result, sent, recipients: sent.flatMap(({ message }) => message.to.map((to) => to.address)).sort() }
  }

  test('consent given: stored with method and wording version, and a processing notice; again sends none', async () => {
    for (const email of [ana, ben]) {
      const given = await postJson(`${main.url}/api/consents`, { email, code: await codeFor(email) })
      expect(given.status).toBe(201)
      expect(await given.json()).toMatchObject({ ok: true })
    }
    await queueIdle(main.app.service.queue)
    const [notice] = notices(ana)
    expect(notices(ana)).toHaveLength(1)
    expect(notice?.message.subject).toBe(`[${DEMO_AD_SENDER.name}] 광고성 정보 수신동의 처리 결과 안내`)
    expect(notice?.message.subject).not.toMatch(/광고\)/)
    expect(notice?.message.text).toContain('수신동의')

    const { rows } = await main.app.pool.query(
      'SELECT address, method, source, consent_text_version, withdrawn_at FROM ad_consents ORDER BY address',
    )
    expect(rows).toEqual([
      {
        address: ana,
        method: 'website form',
        source: 'POST /api/consents',
        consent_text_version: 'v1',
        withdrawn_at: null,
      },
      {
        address: ben,
        method: 'website form',
        source: 'POST /api/consents',
        consent_text_version: 'v1',
        withdrawn_at: null,
      },
    ])

    // A second consent keeps the first (and its date): the notice is the same job, not sent twice.
    const again = await postJson(`${main.url}/api/consents`, { email: ana, code: await codeFor(ana) })
    expect(again.status).toBe(200)
    await queueIdle(main.app.service.queue)
    expect(notices(ana)).toHaveLength(1)

    // Without a valid code nothing is stored.
    const wrong = await postJson(`${main.url}/api/consents`, { email: cho, code: '000000' })
    expect(wrong.status).toBe(400)
    expect(await wrong.json()).toMatchObject({ error: { field: 'code' } })
    expect((await main.app.pool.query('SELECT 1 FROM ad_consents WHERE address = $1', [cho])).rowCount).toBe(0)
  })

  test('a sponsored issue reaches consenting subscribers only, as (광고) with the sender in the footer', async () => {
    const { result, sent, recipients } = await publish('ad-1')
    expect(result).toMatchObject({ batchId: 'issue-ad-1', total: 3, enqueued: 2, withoutConsent: 1 })
    expect(recipients).toEqual([ana, ben])
    for (const { message } of sent) {
      expect(message.subject).toBe('(광고) [Vality] Issue ad-1')
      for (const part of [message.html, message.text].map((body) => body?.replace(/\s+/g, ' '))) {
        for (const item of Object.values(DEMO_AD_SENDER)) expect(part).toContain(item)
        expect(part).toContain('Acme Coffee')
      }
      expect(message.headers?.['List-Unsubscribe']).toMatch(/^<https:/)
    }
    // The mark is the queue's to add: in a title it would not be at the start of the subject.
    for (const title of ['(광고) Sale', '[광고] Sale']) {
      const marked = await postJson(`${main.url}/api/issues/marked/publish`, { title, body: 'x' })
      expect(marked.status).toBe(400)
      expect(await marked.json()).toMatchObject({ error: { field: 'title' } })
    }
    // An issue without a sponsor is not advertising: everyone, no mark.
    const plain = await postJson(`${main.url}/api/issues/plain-1/publish`, { title: 'Plain', body: 'Hello.' })
    expect(await plain.json()).toMatchObject({ total: 3, enqueued: 3 })
    await queueIdle(main.app.service.queue)
    expect(main.transport.find({ batchId: 'issue-plain-1', to: cho })?.message.subject).toBe('[Vality] Plain')
  })

  test('withdrawn: a notice, and the next sponsored issue skips them', async () => {
    const withdrawn = await postJson(`${main.url}/api/consents/withdraw`, { email: ben, code: await codeFor(ben) })
    expect(withdrawn.status).toBe(200)
    await queueIdle(main.app.service.queue)
    const benNotices = notices(ben)
    expect(benNotices.map(({ message }) => message.subject)).toEqual([
      `[${DEMO_AD_SENDER.name}] 광고성 정보 수신동의 처리 결과 안내`,
      `[${DEMO_AD_SENDER.name}] 광고성 정보 수신동의 철회 처리 결과 안내`,
    ])

    const { result, recipients } = await publish('ad-2')
    expect(result).toMatchObject({ total: 3, enqueued: 1, withoutConsent: 2 })
    expect(recipients).toEqual([ana])
  })

  test('the reminder run over a fake now: a consent older than 23 months gets one reminder, its withdraw link works', async () => {
    const { pool } = main.app
    // Dan consented 23 months and 10 days before now, Eve 30 days before: only Dan is due.
    const now = new Date()
    await pool.query(
      `INSERT INTO ad_consents (address, consented_at, method, source, consent_text_version)
       VALUES ('dan@example.com', $1, 'import', 'test', 'v1'), ('eve@example.com', $2, 'import', 'test', 'v1')`,
      [new Date(now.getTime() - (700 + 10) * DAY_MS), new Date(now.getTime() - 30 * DAY_MS)],
    )
    const reminders = main.app.reminders
    if (!reminders) throw new Error('the Express host runs reminders')
    const first = await reminders.runOnce(now)
    expect(first).toMatchObject({ enqueued: 1, skipped: 0, failed: [], complete: true })
    await queueIdle(main.app.service.queue)
    const [reminder] = main.transport.filter({ type: 'consent-reminder' })
    expect(main.transport.filter({ type: 'consent-reminder' })).toHaveLength(1)
    expect(reminder?.message.to[0]?.address).toBe('dan@example.com')
    const { rows } = await pool.query("SELECT last_reminder_at FROM ad_consents WHERE address = 'dan@example.com'")
    expect((rows[0].last_reminder_at as Date).getTime()).toBe(now.getTime())
    // The same day again: nothing due.
    expect(await reminders.runOnce(now)).toMatchObject({ enqueued: 0 })

    // 23 months on, Ana (consented in this file), Eve and Dan again (from his reminder) are due; Ben withdrew.
    const later = await reminders.runOnce(new Date(now.getTime() + 710 * DAY_MS))
    expect(later).toMatchObject({ enqueued: 3 })
    await queueIdle(main.app.service.queue)
    const addressed = main.transport
      .filter({ type: 'consent-reminder' })
      .flatMap(({ message }) => message.to.map((to) => to.address))
    expect(addressed.sort()).toEqual([ana, 'dan@example.com', 'dan@example.com', 'eve@example.com'])

    // The withdraw link: GET shows a button and changes nothing, the POST withdraws with a notice.
    const links = [...(reminder?.message.html ?? '').matchAll(/href="([^"]*\/api\/consents\/action\?token=[^"]+)"/g)]
      .map((match) => (match[1] as string).replaceAll('&amp;', '&'))
      .filter((link) => {
        const checked = verifyConsentActionToken(new URL(link).searchParams.get('token'), main.config.unsubscribeSecret)
        return checked.ok && checked.action === 'withdraw'
      })
    expect(links.length).toBeGreaterThan(0)
    const target = local(main.url, links[0] as string)
    expect((await fetch(target)).status).toBe(200)
    expect(
      (await pool.query("SELECT withdrawn_at FROM ad_consents WHERE address = 'dan@example.com'")).rows[0],
    ).toEqual({
      withdrawn_at: null,
    })
    expect((await fetch(target, { method: 'POST' })).status).toBe(200)
    await queueIdle(main.app.service.queue)
    expect(notices('dan@example.com').map(({ message }) => message.subject)).toEqual([
      `[${DEMO_AD_SENDER.name}] 광고성 정보 수신동의 철회 처리 결과 안내`,
    ])
  })

  test('the one-click unsubscribe of a sponsored issue withdraws the consent too, with its notice', async () => {
    const issue = main.transport.find({ batchId: 'issue-ad-2', to: ana }) as SentMessage
    const reply = await fetch(local(main.url, unsubscribeLinkOf(issue)), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    })
    expect(reply.status).toBe(200)
    await queueIdle(main.app.service.queue)
    expect(notices(ana).map(({ message }) => message.subject)).toEqual([
      `[${DEMO_AD_SENDER.name}] 광고성 정보 수신동의 처리 결과 안내`,
      `[${DEMO_AD_SENDER.name}] 광고성 정보 수신동의 철회 처리 결과 안내`,
    ])
    const { rows } = await main.app.pool.query('SELECT withdrawn_at FROM ad_consents WHERE address = $1', [ana])
    expect(rows[0].withdrawn_at).toBeInstanceOf(Date)
  })

  test('the reminder run starts with the host on its interval and stops with it', async () => {
    const booted = await boot({
      config: { advertising: { ...loadConfig({}).advertising, quietHours: false, reminderIntervalMs: 100 } },
    })
    const runs = () => booted.logs.filter((line) => line.startsWith('consents: reminder run:')).length
    await waitUntil(() => runs() >= 2, 5000, 'two reminder runs')
    await booted.app.stop({ timeoutMs: 2000 })
    const after = runs()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(runs()).toBe(after)
  })
})
