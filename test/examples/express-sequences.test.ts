/**
 * The Express example's welcome series and A/B-tested issues over HTTP against the real
 * PostgreSQL: a confirmation enrols the subscriber in the Korean welcome series (day 0, day 3,
 * day 7 on a fake clock), and a published issue can test two subjects on a share of its readers.
 */
import { randomBytes } from 'node:crypto'
import type { SentMessage } from 'mailstream/memory'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createExpressApp, type ExpressApp } from '../../examples/express/app.js'
import { waitUntil } from '../helpers/redis.js'
import { type Booted, booter, local, postJson, queueIdle, unsubscribeLinkOf } from './contract.js'

const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const schema = `example_seq_${randomBytes(4).toString('hex')}`
const DAY_MS = 24 * 3600_000

afterAll(async () => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await client.end()
})

// The series' clock: the tests move it days ahead; the runner polls every 50 ms.
const clock = { offset: 0 }
const boot = booter<ExpressApp>((config, overrides) =>
  createExpressApp(
    { ...config, databaseUrl },
    { ...overrides, schema, sequences: { now: () => Date.now() + clock.offset, intervalMs: 50 } },
  ),
)

describe('Express: welcome series and A/B-tested issues', () => {
  let main: Booted<ExpressApp>

  beforeAll(async () => {
    main = await boot()
  })

  const to = (email: string) => (sent: SentMessage) => sent.message.to.some((address) => address.address === email)

  test('a confirmed subscriber is enrolled once: the welcome on day 0, the best-of issue on day 3, none after an unsubscribe', async () => {
    const { app, url, transport } = main
    const email = 'series.reader@example.com'
    expect((await postJson(`${url}/api/subscriptions`, { email, name: '하늘' })).status).toBe(202)
    const confirmation = await transport.waitFor({ to: email, type: 'subscription-confirm' })
    const link = /https:\/\/news\.example\.com\/api\/subscriptions\/confirm\?token=[A-Za-z0-9_.%-]+/.exec(
      confirmation.message.text ?? '',
    )?.[0] as string
    // Not enrolled before the confirmation.
    expect(await app.sequences.get('welcome-ko', email)).toBeNull()

    expect((await fetch(local(url, link))).status).toBe(200)
    const welcome = await transport.waitFor((sent) => to(email)(sent) && sent.message.jobId.endsWith('.welcome'))
    expect(welcome.message.subject).toBe('Vality에 오신 것을 환영합니다')
    expect(welcome.message.text).toContain('하늘')
    await waitUntil(async () => (await app.sequences.get('welcome-ko', email))?.step === 'best-of', 5000, 'the move')
    expect(await app.sequences.get('welcome-ko', email)).toMatchObject({
      status: 'active',
      enrolledAt: expect.any(Number),
    })

    // A second click enrols nothing and sends nothing.
    expect((await fetch(local(url, link))).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 300)) // a few runs of the runner
    await queueIdle(app.service.queue)
    expect(transport.filter(to(email))).toHaveLength(2) // the confirmation and the welcome
    expect(await app.sequences.stats('welcome-ko')).toMatchObject({ enrolled: 1, active: 1 })
    expect(transport.filter({ to: email, type: 'welcome' })).toHaveLength(0) // no separate welcome job

    // Day 3: the best-of issue, once.
    clock.offset = 3 * DAY_MS + 60_000
    const bestOf = await transport.waitFor((sent) => to(email)(sent) && sent.message.jobId.endsWith('.best-of'))
    expect(bestOf.message.subject).toBe('[Vality] 이번 주 베스트')
    await new Promise((resolve) => setTimeout(resolve, 300))
    await queueIdle(app.service.queue)
    expect(transport.filter(to(email))).toHaveLength(3)

    // The reader leaves on day 5: the series ends, and day 7 sends nothing.
    expect((await fetch(local(url, unsubscribeLinkOf(bestOf)), { method: 'POST' })).status).toBe(200)
    expect(await app.sequences.get('welcome-ko', email)).toMatchObject({
      status: 'exited',
      exitReason: 'goal:unsubscribed',
    })
    clock.offset = 7 * DAY_MS + 120_000
    await app.sequences.runOnce()
    await new Promise((resolve) => setTimeout(resolve, 300))
    await queueIdle(app.service.queue)
    expect(transport.filter(to(email))).toHaveLength(3)
  })

  test('the feedback request goes on day 7 to a reader who stays', async () => {
    const { app, url, transport } = main
    clock.offset = 0
    const email = 'stays@example.com'
    expect((await postJson(`${url}/api/subscriptions`, { email, locale: 'ko' })).status).toBe(202)
    const confirmation = await transport.waitFor({ to: email, type: 'subscription-confirm' })
    const link = /https:\/\/news\.example\.com\/api\/subscriptions\/confirm\?token=[A-Za-z0-9_.%-]+/.exec(
      confirmation.message.text ?? '',
    )?.[0] as string
    expect((await fetch(local(url, link))).status).toBe(200)
    await transport.waitFor((sent) => to(email)(sent) && sent.message.jobId.endsWith('.welcome'))
    clock.offset = 3 * DAY_MS + 60_000
    await transport.waitFor((sent) => to(email)(sent) && sent.message.jobId.endsWith('.best-of'))
    clock.offset = 7 * DAY_MS + 120_000
    const feedback = await transport.waitFor((sent) => to(email)(sent) && sent.message.jobId.endsWith('.feedback'))
    expect(feedback.message.subject).toBe('[Vality] 일주일 동안 어떠셨나요?')
    expect(feedback.message.html).toContain('href="https://news.example.com/feedback"')
    // The runner moves the enrolment past the step just after it enqueued the email.
    await waitUntil(async () => (await app.sequences.get('welcome-ko', email))?.status === 'done', 5000, 'done')
    clock.offset = 0
  })

  test('an A/B-tested issue sends the test share first, then the winner to the others: one email each', async () => {
    const { app, url, transport } = main
    const readers = Array.from({ length: 200 }, (_, i) => `ab${String(i).padStart(3, '0')}@example.com`)
    for (let i = 0; i < readers.length; i += 50) {
      await Promise.all(
        readers.slice(i, i + 50).map(async (email) => {
          await app.store.requestSubscription({ email, locale: 'en' })
          expect(await app.store.activate(email)).toBe(true)
        }),
      )
    }
    let active = 0
    for await (const _ of app.store.activeSubscribers()) active++
    expect(active).toBeGreaterThanOrEqual(200)

    const subjects = ['Spring is here', 'Our April issue']
    const reply = await postJson(`${url}/api/issues/ab-1/publish`, {
      title: 'April',
      body: 'News first.',
      test: { subjects, share: 0.2, decideAfter: '2h' },
    })
    expect(reply.status).toBe(202)
    const result = (await reply.json()) as { enqueued: number; held: number; duplicates: number }
    expect(result.enqueued + result.held).toBe(active)
    expect(result.held).toBeGreaterThan(active / 2)
    await queueIdle(app.service.queue)
    const tested = transport.filter({ batchId: 'issue-ab-1' })
    expect(tested).toHaveLength(result.enqueued)
    for (const subject of subjects) {
      expect(tested.filter((sent) => sent.message.subject === subject).length).toBeGreaterThan(0)
    }
    // Publishing again adds nobody.
    const again = await postJson(`${url}/api/issues/ab-1/publish`, {
      title: 'April',
      body: 'News first.',
      test: { subjects, share: 0.2, decideAfter: '2h' },
    })
    expect(again.status).toBe(202)
    expect(await again.json()).toMatchObject({ enqueued: 0 })

    // The operator sends the winner now: below minSample (100) the first subject wins.
    const decided = await app.service.queue.decideAbTest('issue-ab-1')
    expect(decided.decision).toMatchObject({ winner: 0, reason: 'min-sample' })
    await waitUntil(() => transport.filter({ batchId: 'issue-ab-1' }).length >= active, 10_000, 'the winner sent')
    await queueIdle(app.service.queue)
    const sent = transport.filter({ batchId: 'issue-ab-1' })
    expect(sent).toHaveLength(active)
    const perReader = new Map<string, string[]>()
    for (const { message } of sent) {
      for (const address of message.to)
        perReader.set(address.address, [...(perReader.get(address.address) ?? []), message.subject])
    }
    expect(perReader.size).toBe(active)
    expect([...perReader.values()].every((got) => got.length === 1)).toBe(true)
    const winners = sent.slice(result.enqueued)
    expect(winners.every((message) => message.message.subject === subjects[0])).toBe(true)
    // (`held` counts the second publish's recipients again: it held them once more, as duplicates.)
    expect((await app.service.queue.getBatch('issue-ab-1'))?.abTest).toMatchObject({ state: 'done' })
  })

  test('a bad test is refused with its field, and nothing is enqueued', async () => {
    const { url } = main
    const publish = (id: string, extra: Record<string, unknown>) =>
      postJson(`${url}/api/issues/${id}/publish`, { title: 'T', body: 'B', ...extra })
    const cases: [Record<string, unknown>, string][] = [
      [{ test: { subjects: ['only one'], share: 0.2, decideAfter: '1h' } }, 'test.subjects'],
      [{ test: { subjects: ['a', 'b\nBcc: x'], share: 0.2, decideAfter: '1h' } }, 'test.subjects.1'],
      [{ test: { subjects: ['a', 'b'], share: 2, decideAfter: '1h' } }, 'options.test.share'],
      [{ test: { subjects: ['a', 'b'], share: 0.2, decideAfter: '1h' }, sponsor: { name: 'S', body: 'x' } }, 'test'],
    ]
    for (const [index, [extra, field]] of cases.entries()) {
      const reply = await publish(`bad-${index}`, extra)
      expect(reply.status).toBe(400)
      expect(await reply.json()).toMatchObject({ error: { code: 'E_VALIDATION', field } })
      expect(await main.app.service.queue.getBatch(`issue-bad-${index}`)).toBeNull()
    }
  })
})
