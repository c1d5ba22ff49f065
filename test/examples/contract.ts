/**
 * The behaviour both examples share, driven over HTTP: each example's test file boots its app on
 * a free port with a memory transport and a fresh Redis prefix, and runs this suite.
 * The tests run in order: the newsletter ones first, while the seeded subscribers are the only
 * active ones.
 */
import { createEmailQueue, createEmailWorker, type EmailQueue } from 'mailstream'
import { createMemoryTransport, type MemoryTransport, type SentMessage } from 'mailstream/memory'
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest'
import { type Config, loadConfig } from '../../examples/shared/config.js'
import type { AppOverrides, ExampleApp } from '../../examples/shared/host.js'
import { openEventStream } from '../helpers/http.js'
import { parseExposition } from '../helpers/prometheus.js'
import { connect, redisUrl, uniquePrefix, waitUntil } from '../helpers/redis.js'
import { snsFixture, TOPIC_ARN } from '../helpers/sns.js'

/** Links in emails point here, as behind a proxy; the tests send them to the app's own address. */
export const PUBLIC_URL = 'https://news.example.com'

export const sns = snsFixture()

export interface Booted<A extends ExampleApp = ExampleApp> {
  app: A
  url: string
  transport: MemoryTransport
  config: Config
  logs: string[]
}

export type CreateApp<A extends ExampleApp> = (config: Config, overrides: AppOverrides) => Promise<A>

export interface EmailLogRow {
  source: string
  event: string
  job_id: string | null
  batch_id: string | null
  recipients: string[]
  message_id: string | null
}

export interface SuiteOptions<A extends ExampleApp> {
  name: string
  createApp: CreateApp<A>
  /** Express: the EmailLog rows, to check them against what was sent. */
  emailLog?: (app: A) => Promise<EmailLogRow[]>
}

/** Boots an app on 127.0.0.1, port 0, with a memory transport; `stop()` it, or it stops after the file. */
export function booter<A extends ExampleApp>(createApp: CreateApp<A>) {
  const started: A[] = []
  afterAll(async () => {
    await Promise.all(started.map((app) => app.stop({ timeoutMs: 2000 })))
  })
  return async function boot(
    options: { config?: Partial<Config>; overrides?: AppOverrides; transport?: MemoryTransport } = {},
  ): Promise<Booted<A>> {
    const transport = options.transport ?? createMemoryTransport()
    const logs: string[] = []
    const config: Config = {
      ...loadConfig({}),
      redisUrl: redisUrl(),
      prefix: uniquePrefix('example'),
      publicUrl: PUBLIC_URL,
      snsTopicArns: [TOPIC_ARN],
      ...options.config,
    }
    const app = await createApp(config, {
      transport,
      log: (line) => logs.push(line),
      fetchCertificate: sns.fetchCertificate,
      worker: { concurrency: 50 },
      ...options.overrides,
    })
    started.push(app)
    const url = await app.listen(0, '127.0.0.1')
    return { app, url, transport, config, logs }
  }
}

/** A link from an email, sent to the app instead of the public host. */
export const local = (url: string, link: string) => {
  const parsed = new URL(link)
  expect(parsed.origin).toBe(PUBLIC_URL)
  return `${url}${parsed.pathname}${parsed.search}`
}

export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })

/** The code in a verification email's subject (`[Vality] 인증 코드 123456`). */
const codeOf = (sent: SentMessage) => /\b(\d{6})\b/.exec(sent.message.subject)?.[1] as string

/** The unsubscribe link of a received email, from its List-Unsubscribe header. */
export function unsubscribeLinkOf(sent: SentMessage): string {
  const header = sent.message.headers?.['List-Unsubscribe'] ?? ''
  const link = /<(https:[^>]+)>/.exec(header)?.[1]
  if (!link) throw new Error(`no https link in List-Unsubscribe: ${header}`)
  return link
}

/** Resolves once the queue holds no work: nothing waiting, pending or delayed. */
export async function queueIdle(queue: EmailQueue): Promise<void> {
  await waitUntil(
    async () => {
      const stats = await queue.stats()
      return stats.delayed === 0 && Object.values(stats.streams).every((stream) => stream.length === 0)
    },
    10_000,
    'the queue to be idle',
  )
}

async function seedActive(app: ExampleApp, emails: string[]): Promise<void> {
  for (let i = 0; i < emails.length; i += 50) {
    await Promise.all(
      emails.slice(i, i + 50).map(async (email, index) => {
        await app.store.requestSubscription({ email, name: `Reader ${i + index}`, locale: 'en' })
        expect(await app.store.activate(email)).toBe(true)
      }),
    )
  }
}

async function activeEmails(app: ExampleApp): Promise<string[]> {
  const emails: string[] = []
  for await (const subscriber of app.store.activeSubscribers(64)) emails.push(subscriber.email)
  return emails
}

/** How many messages of a batch each recipient got. */
function perRecipient(transport: MemoryTransport, batchId: string): Map<string, number> {
  const counts = new Map<string, number>()
  for (const { message } of transport.filter({ batchId })) {
    for (const to of message.to) counts.set(to.address, (counts.get(to.address) ?? 0) + 1)
  }
  return counts
}

export function exampleSuite<A extends ExampleApp>(options: SuiteOptions<A>): void {
  const boot = booter(options.createApp)
  const seeded = Array.from({ length: 500 }, (_, i) => `reader${String(i).padStart(3, '0')}@example.com`)
  let main: Booted<A>
  beforeAll(async () => {
    main = await boot()
  })

  describe(`${options.name}: newsletter`, () => {
    test('publishing to 500 subscribers sends each one exactly once; progress reaches 100 and done; again adds 0', async () => {
      const { app, url, transport } = main
      await seedActive(app, seeded)
      expect((await activeEmails(app)).sort()).toEqual(seeded)

      const published = await postJson(`${url}/api/issues/1/publish`, { title: 'Issue 1', body: '## Hello\n\nFirst.' })
      expect(published.status).toBe(202)
      expect(await published.json()).toEqual({
        batchId: 'issue-1',
        total: 500,
        enqueued: 500,
        duplicates: 0,
        invalid: 0,
        cancelled: false,
      })

      // Opened after the publish: the current state comes first, so a late client still sees the end.
      const events = await openEventStream(`${url}/api/issues/1/progress`)
      expect(events.response.headers.get('content-type')).toMatch(/^text\/event-stream/)
      await waitUntil(() => events.of('done').length > 0, 15_000, 'the done event')
      const [done] = events.of<{ percentage: number; sent: number; total: number; done: boolean }>('done')
      expect(done).toMatchObject({ percentage: 100, sent: 500, total: 500, done: true })
      // The server ends the stream after `done`.
      await waitUntil(() => app.service.openProgressStreams === 0, 5000, 'the stream to end')
      await events.close()

      const counts = perRecipient(transport, 'issue-1')
      expect([...counts.keys()].sort()).toEqual(seeded)
      expect([...counts.values()].every((count) => count === 1)).toBe(true)
      const sample = transport.find({ batchId: 'issue-1', to: 'reader042@example.com' }) as SentMessage
      expect(sample.message.subject).toBe('[Vality] Issue 1') // the built-in newsletter subject carries the brand
      expect(sample.message.html).toContain('<h2')

      const again = await postJson(`${url}/api/issues/1/publish`, { title: 'Issue 1', body: 'changed' })
      expect(again.status).toBe(202)
      expect(await again.json()).toMatchObject({ total: 500, enqueued: 0, duplicates: 500 })
      await queueIdle(app.service.queue)
      expect(transport.filter({ batchId: 'issue-1' })).toHaveLength(500)

      if (options.emailLog) {
        // One `sent` row per delivered job, with the job ids the transport saw.
        const sentIds = transport.filter({ batchId: 'issue-1' }).map(({ message }) => message.jobId)
        let rows: EmailLogRow[] = []
        await waitUntil(
          async () => {
            rows = (await options.emailLog?.(app))?.filter((row) => row.batch_id === 'issue-1') ?? []
            return rows.filter((row) => row.event === 'sent').length >= 500
          },
          10_000,
          'the EmailLog rows',
        )
        const sentRows = rows.filter((row) => row.event === 'sent')
        expect(sentRows.map((row) => row.job_id).sort()).toEqual(sentIds.sort())
        expect(new Set(sentRows.map((row) => row.job_id)).size).toBe(500)
        const byJob = new Map(transport.filter({ batchId: 'issue-1' }).map((sent) => [sent.message.jobId, sent]))
        for (const row of sentRows) {
          const sent = byJob.get(row.job_id as string) as SentMessage
          expect(row.message_id).toBe(sent.messageId)
          expect(row.recipients).toEqual([sent.message.to[0]?.address])
        }
      }
    })

    test('one-click unsubscribe stops the next issue for that address only', async () => {
      const { app, url, transport } = main
      const leaving = transport.find({ batchId: 'issue-1', to: 'reader007@example.com' }) as SentMessage
      expect(leaving.message.headers?.['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click')
      const link = local(url, unsubscribeLinkOf(leaving))

      // GET shows a page and changes nothing (mail scanners open links).
      const pageResponse = await fetch(link)
      expect(pageResponse.status).toBe(200)
      expect(await pageResponse.text()).toContain('<form method="post">')
      expect((await app.store.get('reader007@example.com'))?.status).toBe('active')

      // RFC 8058: a POST with List-Unsubscribe=One-Click, no cookie, no login.
      const oneClick = await fetch(link, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      })
      expect(oneClick.status).toBe(200)
      expect((await app.store.get('reader007@example.com'))?.status).toBe('unsubscribed')
      // A tampered token is refused.
      const tampered = await fetch(link.replace(/token=([^&]{4})/, 'token=AAAA'), { method: 'POST' })
      expect(tampered.status).toBe(400)

      const published = await postJson(`${url}/api/issues/2/publish`, { title: 'Issue 2', body: 'Second.' })
      expect(await published.json()).toMatchObject({ total: 499, enqueued: 499 })
      await waitUntil(async () => (await app.service.queue.getBatch('issue-2'))?.done === true, 15_000, 'issue 2')
      const counts = perRecipient(transport, 'issue-2')
      expect(counts.has('reader007@example.com')).toBe(false)
      expect([...counts.keys()].sort()).toEqual(seeded.filter((email) => email !== 'reader007@example.com'))
      expect([...counts.values()].every((count) => count === 1)).toBe(true)

      // Leaving the newsletter is not a bounce: the address is not suppressed, so codes still reach it.
      expect(await app.service.queue.suppression.has('reader007@example.com')).toBe(false)
      expect(
        (await postJson(`${url}/api/auth/send-verification-code`, { email: 'reader007@example.com' })).status,
      ).toBe(202)
      await transport.waitFor({ to: 'reader007@example.com', type: 'verification-code' })
    })

    test('progress: the current state first, cleanup when the client leaves, done at the end', async () => {
      const { app, url } = main
      app.service.worker.pause('test')
      onTestFinished(() => app.service.worker.resume())
      const published = await postJson(`${url}/api/issues/3/publish`, { title: 'Issue 3', body: 'Third.' })
      expect(await published.json()).toMatchObject({ enqueued: 499 })

      const leaving = await openEventStream(`${url}/api/issues/3/progress`)
      await waitUntil(() => leaving.of('progress').length > 0, 5000, 'the first progress event')
      expect(leaving.of('progress')[0]).toMatchObject({ total: 499, done: false })
      expect(app.service.openProgressStreams).toBe(1)
      await leaving.close()
      await waitUntil(() => app.service.openProgressStreams === 0, 5000, 'the stream to be cleaned up')

      const staying = await openEventStream(`${url}/api/issues/3/progress`)
      app.service.worker.resume()
      await waitUntil(() => staying.of('done').length > 0, 15_000, 'the done event')
      expect(staying.of('done')[0]).toMatchObject({ percentage: 100, sent: 499 })
      await staying.close()

      expect((await fetch(`${url}/api/issues/404/progress`)).status).toBe(404)
    })

    test('unsubscribing while an issue is still sending cancels their unsent job of it', async () => {
      const { app, url, transport } = main
      const { worker, queue } = app.service
      worker.pause()
      onTestFinished(() => worker.resume())
      const published = await postJson(`${url}/api/issues/4/publish`, { title: 'Issue 4', body: 'Fourth.' })
      expect(await published.json()).toMatchObject({ total: 499, enqueued: 499 })
      expect(await queue.getBatch('issue-4')).toMatchObject({ done: false, sent: 0 })

      // The link from an earlier issue; the address sorts late, so its job of issue 4 is still queued.
      const earlier = transport.find({ batchId: 'issue-1', to: 'reader450@example.com' }) as SentMessage
      const oneClick = await fetch(local(url, unsubscribeLinkOf(earlier)), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'List-Unsubscribe=One-Click',
      })
      expect(oneClick.status).toBe(200)
      worker.resume()
      await waitUntil(async () => (await queue.getBatch('issue-4'))?.done === true, 15_000, 'issue 4')

      const counts = perRecipient(transport, 'issue-4')
      expect(counts.has('reader450@example.com')).toBe(false)
      expect(counts.size).toBe(498)
      expect([...counts.values()].every((count) => count === 1)).toBe(true)
      expect(await queue.getBatch('issue-4')).toMatchObject({ sent: 498, cancelled: 1, done: true })
    })

    test('the SES webhook applies a signed event; a forged one is refused', async () => {
      const { app, url, transport } = main
      const sent = transport.find({ batchId: 'issue-1', to: 'reader001@example.com' }) as SentMessage
      const event = sns.signedEvent({
        type: 'Delivery',
        messageId: sent.messageId,
        jobId: sent.message.jobId,
        batchId: 'issue-1',
        recipients: ['reader001@example.com'],
      })
      const post = (message: Record<string, string>) =>
        fetch(`${url}/webhooks/ses`, {
          method: 'POST',
          headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': 'Notification' },
          body: JSON.stringify(message),
        })
      expect((await post(event)).status).toBe(200)
      expect((await app.service.queue.getStatus(sent.message.jobId))?.delivery?.state).toBe('delivered')

      const forged = { ...event, MessageId: 'forged', Message: event.Message?.replace('Delivery', 'Bounce') as string }
      expect((await post(forged)).status).toBe(403)

      if (options.emailLog) {
        const rows = (await options.emailLog(app)).filter((row) => row.source === 'ses')
        expect(rows).toEqual([
          expect.objectContaining({
            event: 'delivery',
            job_id: sent.message.jobId,
            batch_id: 'issue-1',
            message_id: sent.messageId,
            recipients: ['reader001@example.com'],
          }),
        ])
      }
    })
    test('an A/B-tested issue: the test share first, the winner to the others once decided, one email each', async () => {
      const { app, url, transport } = main
      const active = (await activeEmails(app)).length
      const subjects = ['Subject A', 'Subject B']
      const published = await postJson(`${url}/api/issues/ab/publish`, {
        title: 'Tested',
        body: 'Two subjects.',
        test: { subjects, share: 0.1, decideAfter: '1h' },
      })
      expect(published.status).toBe(202)
      const result = (await published.json()) as { enqueued: number; held: number }
      expect(result.enqueued + result.held).toBe(active)
      expect(result.enqueued).toBeLessThan(active / 4)
      await queueIdle(app.service.queue)
      expect(transport.filter({ batchId: 'issue-ab' })).toHaveLength(result.enqueued)

      expect((await app.service.queue.decideAbTest('issue-ab')).decision.winner).toBe(0)
      await waitUntil(() => transport.filter({ batchId: 'issue-ab' }).length >= active, 10_000, 'the winner sent')
      await queueIdle(app.service.queue)
      const counts = perRecipient(transport, 'issue-ab')
      expect(counts.size).toBe(active)
      expect([...counts.values()].every((count) => count === 1)).toBe(true)
      const winners = transport.filter({ batchId: 'issue-ab' }).slice(result.enqueued)
      expect(winners.every(({ message }) => message.subject === subjects[0])).toBe(true)
    })
  })

  describe(`${options.name}: verification codes`, () => {
    test('a code is sent and verified once; a wrong code and a bad address are rejected', async () => {
      const { url, transport } = main
      const email = 'code@example.com'
      const issued = await postJson(`${url}/api/auth/send-verification-code`, { email, locale: 'en' })
      expect(issued.status).toBe(202)
      const code = codeOf(await transport.waitFor({ to: email, type: 'verification-code' }))
      expect(code).toMatch(/^\d{6}$/)

      const wrong = await postJson(`${url}/api/auth/verify-code`, {
        email,
        code: code === '000000' ? '111111' : '000000',
      })
      expect(wrong.status).toBe(400)
      expect(await wrong.json()).toEqual({ ok: false, reason: 'invalid' })
      const right = await postJson(`${url}/api/auth/verify-code`, { email, code })
      expect(right.status).toBe(200)
      expect(await right.json()).toEqual({ ok: true })
      const reused = await postJson(`${url}/api/auth/verify-code`, { email, code })
      expect(await reused.json()).toEqual({ ok: false, reason: 'invalid' })

      const bad = await postJson(`${url}/api/auth/send-verification-code`, { email: 'not-an-address' })
      expect(bad.status).toBe(400)
      expect(await bad.json()).toMatchObject({ error: { code: 'E_VALIDATION', field: 'email' } })
    })

    test('the sixth code for one address within the hour is 429 with Retry-After', async () => {
      const { url } = main
      for (let i = 0; i < 5; i++) {
        expect((await postJson(`${url}/api/auth/send-verification-code`, { email: 'often@example.com' })).status).toBe(
          202,
        )
      }
      const sixth = await postJson(`${url}/api/auth/send-verification-code`, { email: 'often@example.com' })
      expect(sixth.status).toBe(429)
      const retryAfter = Number(sixth.headers.get('retry-after'))
      expect(Number.isInteger(retryAfter)).toBe(true)
      expect(retryAfter).toBeGreaterThan(0)
      expect(retryAfter).toBeLessThanOrEqual(3600)
      expect(await sixth.json()).toMatchObject({ error: { code: 'E_RATE_LIMITED', field: 'email' } })
      // Another address is not affected.
      expect((await postJson(`${url}/api/auth/send-verification-code`, { email: 'rare@example.com' })).status).toBe(202)
    })
  })

  describe(`${options.name}: double opt-in`, () => {
    test('a subscription is confirmed through the link in the email, once, with one welcome email', async () => {
      const { app, url, transport } = main
      const email = 'new.reader@example.com'
      const subscribed = await postJson(`${url}/api/subscriptions`, { email: 'New.Reader@example.com', name: '지민' })
      expect(subscribed.status).toBe(202)
      expect(await app.store.get(email)).toMatchObject({ status: 'pending', name: '지민' })

      const confirmation = await transport.waitFor({ to: email, type: 'subscription-confirm' })
      const link = /https:\/\/news\.example\.com\/api\/subscriptions\/confirm\?token=[A-Za-z0-9_.%-]+/.exec(
        confirmation.message.text ?? '',
      )?.[0] as string
      expect(link).toBeDefined()
      expect(confirmation.message.html).toContain(link)
      // The confirmation's own unsubscribe link is for another list: it confirms nothing.
      const wrongList = await fetch(
        local(url, unsubscribeLinkOf(confirmation)).replace('/unsubscribe', '/subscriptions/confirm'),
      )
      expect(wrongList.status).toBe(400)
      expect((await app.store.get(email))?.status).toBe('pending')

      const confirmed = await fetch(local(url, link))
      expect(confirmed.status).toBe(200)
      expect(confirmed.headers.get('content-type')).toMatch(/^text\/html/)
      expect((await app.store.get(email))?.status).toBe('active')
      // The welcome job (Hono), or the first step of the welcome series (Express).
      const welcome = (sent: SentMessage) =>
        sent.message.to.some((to) => to.address === email) &&
        (sent.message.type === 'welcome' || /^seq\.[^.]+\.[0-9a-f]+\.\d+\.welcome$/.test(sent.message.jobId ?? ''))
      await transport.waitFor(welcome)

      const again = await fetch(local(url, link))
      expect(again.status).toBe(200)
      await queueIdle(app.service.queue)
      expect(transport.filter(welcome)).toHaveLength(1)
      expect(transport.filter({ to: email })).toHaveLength(2) // the confirmation and the welcome
      expect((await activeEmails(app)).includes(email)).toBe(true)

      const bad = await postJson(`${url}/api/subscriptions`, { email: 'nope' })
      expect(bad.status).toBe(400)
      expect(await bad.json()).toMatchObject({ error: { field: 'email' } })
    })
  })

  describe(`${options.name}: operations`, () => {
    test('/healthz is 200; /metrics parses and counts the sent emails; the dashboard is read-only without a password', async () => {
      const { app, url } = main
      const health = await fetch(`${url}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ ok: true, redis: 'ok', store: 'ok', worker: 'running' })

      await queueIdle(app.service.queue)
      const metrics = await fetch(`${url}/metrics`)
      expect(metrics.status).toBe(200)
      expect(metrics.headers.get('content-type')).toBe('text/plain; version=0.0.4')
      const exposition = parseExposition(await metrics.text())
      const sent = exposition.value('mailstream_jobs_total', { outcome: 'sent' })
      expect(sent).toBe((await app.service.queue.stats()).totals.sent)
      expect(sent).toBeGreaterThanOrEqual(500 + 499 + 499)

      const dashboard = await fetch(`${url}/dashboard/`)
      expect(dashboard.status).toBe(200)
      expect(await dashboard.text()).toContain('<!doctype html>')
      const stats = await fetch(`${url}/dashboard/api/stats`)
      expect(stats.status).toBe(200)
      const retry = await fetch(`${url}/dashboard/api/dead/retry-all`, {
        method: 'POST',
        headers: { 'x-mailstream-csrf': '1' },
      })
      expect(retry.status).toBe(403)
    })

    test('DASHBOARD_PASSWORD puts the dashboard and publishing behind basic auth', async () => {
      const { url } = await boot({ config: { dashboardPassword: 'correct horse battery' } })
      const auth = { authorization: `Basic ${Buffer.from('admin:correct horse battery').toString('base64')}` }
      const wrong = { authorization: `Basic ${Buffer.from('admin:wrong').toString('base64')}` }
      const denied = await fetch(`${url}/dashboard/`)
      expect(denied.status).toBe(401)
      expect(denied.headers.get('www-authenticate')).toMatch(/^Basic /)
      expect((await fetch(`${url}/dashboard/`, { headers: wrong })).status).toBe(401)
      expect((await fetch(`${url}/dashboard/`, { headers: auth })).status).toBe(200)
      expect((await postJson(`${url}/api/issues/9/publish`, { title: 't', body: 'b' })).status).toBe(401)
      expect((await postJson(`${url}/api/issues/9/publish`, { title: 't', body: 'b' }, auth)).status).toBe(202)
    })

    test('stop() (as on SIGTERM) closes the server, drains the worker, and leaves nothing half-done', async () => {
      const transport = createMemoryTransport({ latencyMs: 30 })
      const { app, url, logs, config } = await boot({ transport, overrides: { worker: { concurrency: 5 } } })
      const ids: string[] = []
      for (let i = 0; i < 40; i++) {
        const { id } = await app.service.queue.enqueue({
          type: 'notice',
          to: `drain${i}@example.com`,
          subject: 'Notice',
          text: 'Hello',
        })
        ids.push(id)
      }
      await transport.waitForCount(1)
      expect(app.service.worker.running).toBe(true)

      await app.stop({ timeoutMs: 10_000 })
      expect(app.service.worker.running).toBe(false)
      expect(app.service.worker.inFlight).toBe(0)
      const steps = ['http: server closed', 'worker: draining', 'worker: stopped, every send finished', 'queue: closed']
      const positions = steps.map((step) => logs.findIndex((line) => line.startsWith(step)))
      expect(positions.every((position) => position >= 0)).toBe(true)
      expect([...positions].sort((a, b) => a - b)).toEqual(positions)
      expect(logs.findIndex((line) => line.startsWith('redis: connection closed'))).toBeGreaterThan(
        positions[3] as number,
      )
      await expect(fetch(`${url}/healthz`)).rejects.toThrow()

      // Every send that started finished and is recorded as sent; the rest wait, for the next worker.
      const redis = connect()
      const queue = createEmailQueue({ redis, prefix: config.prefix })
      const sentIds = new Set(transport.messages.map(({ message }) => message.jobId))
      expect(sentIds.size).toBe(transport.messages.length)
      for (const id of ids) {
        const status = (await queue.getStatus(id))?.status
        expect(status).toBe(sentIds.has(id) ? 'sent' : 'queued')
      }
      const next = createMemoryTransport({ from: 'noreply@example.com' }) // this worker has no from of its own
      const worker = createEmailWorker({ redis, prefix: config.prefix, transport: next })
      await worker.start()
      await next.waitForCount(ids.length - sentIds.size)
      await worker.stop()
      await queue.close()
      const all = [...transport.messages, ...next.messages].map(({ message }) => message.jobId)
      expect(all.sort()).toEqual([...ids].sort())
    })
  })
}
