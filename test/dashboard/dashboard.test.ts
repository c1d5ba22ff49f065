import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http'
import { Hono } from 'hono'
import { describe, expect, test } from 'vitest'
import { createDashboard, type Dashboard, type DashboardStats } from '../../src/dashboard/index.js'
import * as main from '../../src/index.js'
import { MailstreamError } from '../../src/index.js'
import { queueInternals } from '../../src/queue/internals.js'
import { createSequences, defineSequence, delay, send } from '../../src/sequences/index.js'
import { createFailoverTransport } from '../../src/transports/failover.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { openEventStream, serve } from '../helpers/http.js'
import { harness } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()
const CSRF = { 'x-mailstream-csrf': '1' }
const job = (i: number, extra: Record<string, unknown> = {}) => ({
  type: 'welcome',
  to: `reader${i}@example.com`,
  subject: `Hello ${i}`,
  text: 'Hello',
  ...extra,
})

const get = (dashboard: Dashboard, path: string, init?: RequestInit) =>
  dashboard.fetch(new Request(`http://dashboard.test${path}`, init))
const post = (dashboard: Dashboard, path: string, headers: Record<string, string> = CSRF) =>
  get(dashboard, path, { method: 'POST', headers })

/** Stats without the one number that moves with the clock. */
function withoutAge<T extends { streams: Record<string, { oldestWaitingMs: number }> }>(stats: T) {
  return {
    ...stats,
    streams: Object.fromEntries(
      Object.entries(stats.streams).map(([name, { oldestWaitingMs: _, ...rest }]) => [name, rest]),
    ),
  }
}

/** Jobs that a worker sends (2) or dead-letters (3), then stops: a queue with history and dead letters. */
async function withDeadLetters(h: ReturnType<typeof harness>) {
  h.transport.failNext('never', 3, { message: 'mailbox <b>unavailable</b>' })
  const ids = (await h.queue.enqueueMany([0, 1, 2, 3, 4].map((i) => job(i)))).map((result) => result.id)
  const worker = h.worker({ concurrency: 1 })
  await worker.start()
  await Promise.all(ids.map((id) => h.settled(id)))
  await worker.stop()
  return ids
}

/** What Express's `app.use(path, handler)` does: the mount path moves from `req.url` to `req.baseUrl`. */
function expressStyleMount(path: string, handler: Dashboard, fallback: RequestListener): RequestListener {
  return (req, res) => {
    const url = req.url ?? '/'
    const pathname = url.split('?')[0] as string
    if (pathname !== path && !pathname.startsWith(`${path}/`)) return fallback(req, res)
    const rest = url.slice(path.length)
    Object.assign(req, { originalUrl: url, baseUrl: path, url: rest.startsWith('/') ? rest : `/${rest}` })
    handler(req, res, (error?: unknown) => {
      res.statusCode = error ? 500 : 404
      res.end(error ? 'host error' : 'host 404')
    })
  }
}

describe('createDashboard: options', () => {
  test('bad options throw E_CONFIG naming the field', () => {
    const { queue } = harness(redis)
    const field = (options: unknown) => {
      try {
        createDashboard(options as never)
      } catch (error) {
        expect(error).toBeInstanceOf(MailstreamError)
        expect((error as MailstreamError).code).toBe('E_CONFIG')
        return (error as MailstreamError).field
      }
      return 'no error'
    }
    expect(field({})).toBe('queue')
    expect(field({ queue: {} })).toBe('queue')
    // An object with every method and property of a queue is still not one.
    expect(field({ queue: { ...queue } })).toBe('queue')
    expect(field({ queue, recentBatches: -1 })).toBe('recentBatches')
    expect(field({ queue, batches: ['ok', 'not ok'] })).toBe('batches.1')
    expect(field({ queue, basePath: 'ops' })).toBe('basePath')
    expect(field({ queue, authorize: true })).toBe('authorize')
    expect(field({ queue, statsIntervalMs: 10 })).toBe('statsIntervalMs')
    expect(field({ queue, colour: 'red' })).toBe('colour')
  })
})

test('the dashboard is its own subpath: the main entry exports none of it', () => {
  expect(Object.keys(main).filter((name) => /dashboard/i.test(name))).toEqual([])
})

describe('createDashboard: JSON API', () => {
  test('api/stats is queue.stats() with waiting and in-flight sums', async () => {
    const h = harness(redis)
    await withDeadLetters(h)
    await h.queue.enqueueMany([job(10, { priority: 'high' }), job(11), job(12), job(13), job(14, { priority: 'low' })])
    await h.queue.enqueue(job(15, { delayMs: 60_000 }))
    // A worker that took two entries and crashed: they stay pending (in flight).
    await redis.xreadgroup(
      'GROUP',
      'workers',
      'crashed',
      'COUNT',
      2,
      'STREAMS',
      queueInternals(h.queue).keys.stream('normal'),
      '>',
    )
    const dashboard = createDashboard({ queue: h.queue })

    const response = await get(dashboard, '/api/stats')
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8')
    expect(response.headers.get('cache-control')).toBe('no-store')
    const body = (await response.json()) as DashboardStats
    const stats = await h.queue.stats()
    expect(withoutAge(body)).toMatchObject(withoutAge(stats))
    expect(body.streams.normal).toMatchObject({ length: 3, pending: 2, waiting: 1 })
    expect(body.inFlight).toBe(2)
    expect(body.waiting).toBe(3)
    expect(body.dead).toBe(3)
    expect(body.delayed).toBe(1)
    expect(body.totals).toMatchObject({ sent: 2, failed: 3 })
    expect(body.throughput).toBeNull() // one read is no rate yet
    await dashboard.close()
  })

  test('throughput: jobs sent per second between stats reads', async () => {
    const h = harness(redis)
    const dashboard = createDashboard({ queue: h.queue })
    await get(dashboard, '/api/stats')
    const worker = h.worker()
    await worker.start()
    await h.queue.enqueueMany(Array.from({ length: 30 }, (_, i) => job(i)))
    await h.transport.waitForCount(30)
    await waitUntil(async () => (await h.queue.stats()).totals.sent === 30)
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const { throughput } = (await (await get(dashboard, '/api/stats')).json()) as DashboardStats
    expect(throughput).not.toBeNull()
    expect(throughput?.windowMs).toBeGreaterThanOrEqual(1000)
    expect(throughput?.sentPerSecond).toBeCloseTo((30 * 1000) / (throughput?.windowMs ?? 1), 5)
    expect(throughput?.failedPerSecond).toBe(0)
  })

  test('api/dead lists summaries newest first, without bodies or data', async () => {
    const h = harness(redis)
    const ids = await withDeadLetters(h)
    const secret = await h.queue.enqueue(job(9, { data: { code: '482913' }, html: '<p>482913</p>' }))
    h.transport.failNext('never')
    const worker = h.worker()
    await worker.start()
    await h.settled(secret.id)
    const dashboard = createDashboard({ queue: h.queue })

    const all = (await (await get(dashboard, '/api/dead')).json()) as { total: number; items: { id: string }[] }
    expect(all.total).toBe(4)
    expect(all.items.map((item) => item.id)).toEqual([secret.id, ids[2], ids[1], ids[0]])
    const one = (await (await get(dashboard, '/api/dead?count=1')).json()) as { total: number; items: unknown[] }
    expect(one.total).toBe(4)
    expect(one.items).toEqual([
      {
        entryId: expect.any(String),
        id: secret.id,
        type: 'welcome',
        priority: 'normal',
        to: ['reader9@example.com'],
        subject: 'Hello 9',
        error: '[mailstream] memory transport: injected never failure',
        attempts: 1,
        failedAt: expect.any(Number),
      },
    ])
    expect(JSON.stringify(all)).not.toContain('482913')

    const bad = await get(dashboard, '/api/dead?count=0')
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ error: { code: 'E_VALIDATION' } })
  })

  test('POST api/dead/:id/retry sends a letter again; retry-all and purge', async () => {
    const h = harness(redis)
    const ids = await withDeadLetters(h)
    const dashboard = createDashboard({ queue: h.queue })

    const retried = await post(dashboard, `/api/dead/${encodeURIComponent(ids[0] as string)}/retry`)
    expect(retried.status).toBe(200)
    expect(await retried.json()).toEqual({ retried: 1 })
    expect((await h.queue.getStatus(ids[0] as string))?.status).toBe('queued')
    expect((await h.queue.stats()).dead).toBe(2)

    const again = await post(dashboard, `/api/dead/${ids[0]}/retry`)
    expect(again.status).toBe(404)
    expect(await again.json()).toMatchObject({ error: { code: 'E_NOT_FOUND' } })

    expect(await (await post(dashboard, '/api/dead/retry-all')).json()).toEqual({ retried: 2 })
    expect((await h.queue.getStatus(ids[1] as string))?.status).toBe('queued')
    const worker = h.worker()
    await worker.start()
    expect((await h.settled(ids[1] as string)).status).toBe('sent')

    h.transport.failNext('never')
    const doomed = await h.queue.enqueue(job(7))
    await h.settled(doomed.id)
    expect(await (await post(dashboard, '/api/dead/purge')).json()).toEqual({ purged: 1 })
    expect((await h.queue.stats()).dead).toBe(0)
  })

  test('api/failures lists jobs waiting for a retry, with their last error', async () => {
    const h = harness(redis)
    h.transport.failNext('later', 1, { message: 'connection reset' })
    const { id } = await h.queue.enqueue(job(1, { to: ['a@example.com', 'b@example.com'] }))
    const other = await h.queue.enqueue(job(2, { delayMs: 60_000 })) // scheduled, not failed
    const worker = h.worker({ backoff: { baseMs: 60_000, maxMs: 60_000 } })
    await worker.start()
    await waitUntil(async () => (await h.queue.getStatus(id))?.status === 'retrying')
    const dashboard = createDashboard({ queue: h.queue })
    const body = (await (await get(dashboard, '/api/failures')).json()) as { items: Record<string, unknown>[] }
    expect(body.items).toEqual([
      {
        id,
        status: 'retrying',
        type: 'welcome',
        priority: 'normal',
        attempts: 1,
        maxAttempts: 3,
        error: '[mailstream] connection reset',
        dueAt: expect.any(Number),
        updatedAt: expect.any(Number),
        recipients: ['a@example.com', 'b@example.com'],
      },
    ])
    expect(body.items.map((item) => item.id)).not.toContain(other.id)
  })

  test('batches: recent ones discovered newest first, a list of ids, a function; one batch with totals', async () => {
    const h = harness(redis)
    for (const [index, batchId] of ['issue-1', 'issue-2', 'issue-3'].entries()) {
      await h.queue.enqueueBatch(batchId, [`a${index}@example.com`, `b${index}@example.com`], undefined, {
        subject: 'News',
        text: 'Hello',
      })
      await new Promise((resolve) => setTimeout(resolve, 5)) // distinct createdAt
    }
    const ids = async (dashboard: Dashboard) =>
      ((await (await get(dashboard, '/api/batches')).json()) as { items: { batchId: string }[] }).items.map(
        (item) => item.batchId,
      )
    expect(await ids(createDashboard({ queue: h.queue }))).toEqual(['issue-3', 'issue-2', 'issue-1'])
    expect(await ids(createDashboard({ queue: h.queue, recentBatches: 2 }))).toEqual(['issue-3', 'issue-2'])
    expect(await ids(createDashboard({ queue: h.queue, recentBatches: 0 }))).toEqual([])
    expect(await ids(createDashboard({ queue: h.queue, batches: ['issue-1', 'missing'] }))).toEqual(['issue-1'])
    expect(await ids(createDashboard({ queue: h.queue, batches: async () => ['issue-2', 'bad id!'] }))).toEqual([
      'issue-2',
    ])

    const dashboard = createDashboard({ queue: h.queue })
    const one = (await (await get(dashboard, '/api/batches/issue-2')).json()) as Record<string, unknown>
    expect(one).toMatchObject({ batchId: 'issue-2', total: 2, completed: 0, state: 'sending', totals: { sent: 0 } })
    expect((await get(dashboard, '/api/batches/nope')).status).toBe(404)
    expect((await get(dashboard, `/api/batches/${encodeURIComponent('bad id!')}`)).status).toBe(400)
  })

  test('advertising: a batch enqueued as advertising says so, the stats count advertising sent apart', async () => {
    const h = harness(redis)
    const adQueue = main.createEmailQueue({
      redis,
      prefix: h.prefix,
      advertising: {
        sender: { name: 'Vality', email: 'ad@vality.kr', phone: '02-1234-5678', address: 'Seoul' },
        consent: (addresses) => addresses.map((address) => ({ address, consentedAt: 0 })),
        quietHours: false,
      },
    })
    const options = { template: 'welcome', locale: 'en' }
    await adQueue.enqueueBatch('promo-1', ['a@example.com'], undefined, { ...options, advertising: true })
    await adQueue.enqueueBatch('issue-1', ['a@example.com'], undefined, options)
    await adQueue.close()
    // What the workers count per advertising message sent (test/korea/advertising-worker.test.ts sends them).
    await redis.hincrby(queueInternals(h.queue).keys.metrics, 'advertising:sent', 4)

    const dashboard = createDashboard({ queue: h.queue })
    const { items } = (await (await get(dashboard, '/api/batches')).json()) as {
      items: { batchId: string; advertising?: boolean }[]
    }
    expect(items.map(({ batchId, advertising }) => [batchId, advertising])).toEqual([
      ['issue-1', undefined],
      ['promo-1', true],
    ])
    expect(await get(dashboard, '/api/batches/promo-1').then((response) => response.json())).toMatchObject({
      advertising: true,
    })
    const stats = (await (await get(dashboard, '/api/stats')).json()) as DashboardStats
    expect(stats.totals).toMatchObject({ sent: 0, advertisingSent: 4 })
    await dashboard.close()
  })

  test('the page: security headers, escaped title, relative URLs, script and stylesheet', async () => {
    const { queue } = harness(redis)
    const dashboard = createDashboard({ queue, title: '<script>alert(1)</script> & "ops"' })
    const page = await get(dashboard, '/')
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const csp = page.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
    expect(csp).not.toContain('unsafe-inline')
    expect(page.headers.get('x-content-type-options')).toBe('nosniff')
    expect(page.headers.get('referrer-policy')).toBe('no-referrer')
    const html = await page.text()
    expect(html).toContain('<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;ops&quot;</title>')
    expect(html).not.toContain('<script>alert(1)')
    expect(html).not.toMatch(/<script>/) // no inline script: CSP allows none
    expect(html).toContain('<script src="app.js" defer></script>')
    expect(html).toContain('href="app.css"')
    expect(html).not.toMatch(/(src|href)="\//) // relative: works under any base path

    const script = await get(dashboard, '/app.js')
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    const source = await script.text()
    expect(() => new Function(source)).not.toThrow()
    expect(source).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/)
    expect((await get(dashboard, '/app.css')).headers.get('content-type')).toBe('text/css; charset=utf-8')

    const head = await get(dashboard, '/api/stats', { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const wrong = await get(dashboard, '/api/stats', { method: 'DELETE' })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('GET, HEAD')
  })
})

describe('createDashboard: A/B tests', () => {
  const abOptions = {
    text: 'Hello',
    variants: [{ subject: 'Subject A' }, { subject: 'Subject B' }],
    test: { share: 0.5, decideAfter: '2h', metric: 'clicks' as const, minSample: 3 },
  }
  const readers = (count: number) => Array.from({ length: count }, (_, i) => `ab${i}@example.com`)

  test('a batch shows its test; POST api/batches/:id/ab/decide picks the winner and releases the held', async () => {
    const h = harness(redis)
    const result = await h.queue.enqueueBatch('ab-dash', readers(40), undefined, abOptions)
    expect(result.held).toBeGreaterThan(0)
    await h.queue.enqueue(job(1, { batchId: 'plain' }))
    const worker = h.worker({ concurrency: 10 })
    await worker.start()
    await waitUntil(
      async () => (await h.queue.getBatch('ab-dash'))?.sent === result.enqueued,
      5000,
      'the test group sent',
    )
    const dashboard = createDashboard({ queue: h.queue, batches: ['ab-dash', 'plain'] })

    type Listed = { batchId: string; abTest?: Record<string, unknown> & { variants: { sent: number }[] } }
    const listed = async () => ((await (await get(dashboard, '/api/batches')).json()) as { items: Listed[] }).items
    const before = await listed()
    expect(before.find((batch) => batch.batchId === 'plain')?.abTest).toBeUndefined()
    const testing = before.find((batch) => batch.batchId === 'ab-dash')?.abTest
    expect(testing).toMatchObject({ state: 'testing', metric: 'clicks', minSample: 3, held: result.held, released: 0 })
    expect(testing?.decideAt).toBeGreaterThan(Date.now() + 3_600_000)
    expect(testing?.variants).toMatchObject([
      { index: 0, subject: 'Subject A', opened: 0, clicked: 0, clickRate: 0 },
      { index: 1, subject: 'Subject B', opened: 0, clicked: 0, clickRate: 0 },
    ])
    expect(testing?.variants.reduce((sum, variant) => sum + variant.sent, 0)).toBe(result.enqueued)
    expect(testing).not.toHaveProperty('decision')

    // The POST goes through the same checks as every action: CSRF header, then the queue.
    expect((await post(dashboard, '/api/batches/ab-dash/ab/decide', {})).status).toBe(403)
    expect((await get(dashboard, '/api/batches/ab-dash/ab/decide')).status).toBe(405)
    const decided = await post(dashboard, '/api/batches/ab-dash/ab/decide')
    expect(decided.status).toBe(200)
    const body = (await decided.json()) as { decision: { winner: number; reason: string }; enqueued: number }
    // No clicks yet: both variants have enough sends and tie at 0, the first wins.
    expect(body.decision).toMatchObject({ winner: 0, reason: 'tie' })
    expect(body.enqueued).toBe(result.held)
    await h.transport.waitForCount(41) // the 40 readers and the plain job
    await waitUntil(
      async () => (await listed()).find((batch) => batch.batchId === 'ab-dash')?.abTest?.state === 'done',
      5000,
      'the test done',
    )
    const after = (await listed()).find((batch) => batch.batchId === 'ab-dash')?.abTest
    expect(after).toMatchObject({
      released: result.held,
      decision: { winner: 0, reason: 'tie', at: expect.any(Number) },
    })
    // Deciding again changes nothing.
    const again = (await (await post(dashboard, '/api/batches/ab-dash/ab/decide')).json()) as { enqueued: number }
    expect(again).toMatchObject({ enqueued: 0, decision: { winner: 0 } })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(h.transport.messages.filter(({ message }) => message.subject.startsWith('Subject A'))).toHaveLength(
      40 - (testing?.variants[1]?.sent ?? 0),
    )
    expect(h.transport.messages).toHaveLength(41)

    const none = await post(dashboard, '/api/batches/plain/ab/decide')
    expect(none.status).toBe(404)
    expect(await none.json()).toMatchObject({ error: { code: 'E_NOT_FOUND' } })
    expect((await post(dashboard, `/api/batches/${encodeURIComponent('bad id!')}/ab/decide`)).status).toBe(400)
    await worker.stop()
    await dashboard.close()
  })

  test('read-only: the test is shown, deciding is refused and nothing is decided', async () => {
    const h = harness(redis)
    await h.queue.enqueueBatch('ab-ro', readers(10), undefined, abOptions)
    const dashboard = createDashboard({ queue: h.queue, batches: ['ab-ro'], readOnly: true })
    const refused = await post(dashboard, '/api/batches/ab-ro/ab/decide')
    expect(refused.status).toBe(403)
    expect(await refused.json()).toMatchObject({ error: { code: 'E_READ_ONLY' } })
    expect((await h.queue.getBatch('ab-ro'))?.abTest).toMatchObject({ state: 'testing' })
    expect((await h.queue.getBatch('ab-ro'))?.abTest).not.toHaveProperty('decision')
    await dashboard.close()
  })

  test('the page script renders the test: state badge, variant rows, tested metric, minimum sample, winner', async () => {
    const dashboard = createDashboard({ queue: harness(redis).queue })
    const script = await (await get(dashboard, '/app.js')).text()
    for (const piece of [
      "'sending-winner': 'sending winner'",
      'under-sample',
      "'ab-table'",
      '/ab/decide',
      'metricClass(opens)',
    ]) {
      expect(script).toContain(piece)
    }
    await dashboard.close()
  })
})

describe('createDashboard: sequences', () => {
  const content = { job: () => ({ subject: 'Hello', text: 'Hello' }) }
  const welcome = defineSequence({
    id: 'welcome',
    steps: [send(undefined, { id: 'hello', ...content }), delay('3d'), send(undefined, { id: 'tips', ...content })],
  })

  test('api/sequences: per sequence its totals, exit reasons and steps, from runner.stats', async () => {
    const h = harness(redis)
    const now = Date.UTC(2026, 0, 5, 1, 0)
    const runner = createSequences({ queue: h.queue, sequences: [welcome], now: () => now })
    for (const i of [0, 1, 2]) await runner.enroll('welcome', `seq${i}@example.com`)
    expect(await runner.runOnce()).toMatchObject({ sent: 3 })
    await runner.exit('welcome', 'seq2@example.com', 'unsubscribed')
    const dashboard = createDashboard({ queue: h.queue, sequences: { runner, ids: ['welcome', 'other'] } })

    const response = await get(dashboard, '/api/sequences')
    expect(response.status).toBe(200)
    const { items } = (await response.json()) as { items: Record<string, unknown>[] }
    expect(items[0]).toEqual({ id: 'welcome', stats: await runner.stats('welcome') })
    expect(items[0]).toMatchObject({
      stats: {
        enrolled: 3,
        exited: 1,
        exitReasons: { unsubscribed: 1 },
        steps: [
          { id: 'hello', kind: 'send', at: 0, sent: 3 },
          { kind: 'delay', at: 0 },
          // The two left wait for their second email (the delay is how long until it is due).
          { id: 'tips', kind: 'send', at: 2, sent: 0 },
        ],
      },
    })
    // An id createSequences was not given: that panel shows the error, the others still load.
    expect(items[1]).toMatchObject({ id: 'other', error: expect.stringContaining('no sequence') })

    const page = await (await get(dashboard, '/')).text()
    expect(page).toContain('id="sequences"')
    const script = await (await get(dashboard, '/app.js')).text()
    expect(script).toContain("api('api/sequences')")
    await dashboard.close()
  })

  test('without the option there is no panel and api/sequences is empty; bad options name the field', async () => {
    const h = harness(redis)
    const dashboard = createDashboard({ queue: h.queue })
    expect(await (await get(dashboard, '/')).text()).not.toContain('id="sequences"')
    expect(await (await get(dashboard, '/api/sequences')).json()).toEqual({ items: [] })
    await dashboard.close()
    const field = (sequences: unknown) => {
      try {
        createDashboard({ queue: h.queue, sequences } as never)
      } catch (error) {
        return (error as MailstreamError).field
      }
      return 'no error'
    }
    const runner = createSequences({ queue: h.queue, sequences: [welcome] })
    expect(field({ runner: {}, ids: ['welcome'] })).toBe('sequences.runner')
    expect(field({ runner, ids: [] })).toBe('sequences.ids')
    expect(field({ runner, ids: ['welcome', 'welcome'] })).toBe('sequences.ids')
    expect(field({ runner, ids: ['bad id!'] })).toBe('sequences.ids.0')
    expect(field([runner])).toBe('sequences')
  })
})

describe('createDashboard: transports and providers', () => {
  test('api/stats carries each failover transport: breaker state, sent, failed, took over', async () => {
    const h = harness(redis)
    const primary = createMemoryTransport({ name: 'primary' })
    const backup = createMemoryTransport({ name: 'backup' })
    const failover = createFailoverTransport({
      name: 'mail',
      transports: [{ transport: primary }, { transport: backup }],
      breaker: { failures: 2, windowMs: 10_000, openMs: 60_000 },
    })
    primary.failNext('throttle', 10)
    const dashboard = createDashboard({ queue: h.queue, transports: [failover] })
    const before = (await (await get(dashboard, '/api/stats')).json()) as DashboardStats
    expect(before.failover).toEqual([
      {
        name: 'mail',
        transports: [
          { name: 'primary', state: 'closed', sent: 0, failed: 0, tookOver: 0 },
          { name: 'backup', state: 'closed', sent: 0, failed: 0, tookOver: 0 },
        ],
      },
    ])
    const ids = (await h.queue.enqueueMany([0, 1, 2, 3].map((i) => job(i)))).map((result) => result.id)
    await h.worker({ concurrency: 1, transport: failover }).start()
    for (const id of ids) expect((await h.settled(id)).status).toBe('sent')
    const after = (await (await get(dashboard, '/api/stats')).json()) as DashboardStats
    expect(after.failover).toEqual([{ name: 'mail', transports: failover.stats() }])
    const [first, second] = after.failover?.[0]?.transports ?? []
    expect(first).toMatchObject({ name: 'primary', state: 'open', sent: 0, failed: 2, openedAt: expect.any(Number) })
    expect(second).toMatchObject({ name: 'backup', state: 'closed', sent: 4, failed: 0 })
    expect(second?.tookOver).toBeGreaterThan(0)

    const page = await (await get(dashboard, '/')).text()
    expect(page).toContain('id="transport-rows"')
    expect(await (await get(createDashboard({ queue: h.queue }), '/')).text()).not.toContain('id="transport-rows"')
    expect((await (await get(createDashboard({ queue: h.queue }), '/api/stats')).json()) as object).not.toHaveProperty(
      'failover',
    )
    expect(() => createDashboard({ queue: h.queue, transports: [{}] } as never)).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'transports.0' }),
    )
    await dashboard.close()
  })

  test('api/providers: parked jobs and slow-downs per provider from the metrics hash, busiest first', async () => {
    const h = harness(redis)
    const dashboard = createDashboard({ queue: h.queue })
    expect(await (await get(dashboard, '/api/providers')).json()).toEqual({ items: [] })
    // What the worker writes into P:metrics (src/worker/process.ts) when it parks a job for a
    // provider's pace and when a provider's rate reply slows it down.
    const { keys } = queueInternals(h.queue)
    await redis.hset(keys.metrics, {
      'provider_parked:gmail': 12,
      'provider_slowdown:gmail': 3,
      'provider_parked:naver': 40,
      'provider_slowdown:daum': 1,
      'send_duration:le:100': 7,
    })
    expect(await (await get(dashboard, '/api/providers')).json()).toEqual({
      items: [
        { provider: 'naver', parked: 40, slowDowns: 0 },
        { provider: 'gmail', parked: 12, slowDowns: 3 },
        { provider: 'daum', parked: 0, slowDowns: 1 },
      ],
    })
    const script = await (await get(dashboard, '/app.js')).text()
    expect(script).toContain("api('api/providers')")
    expect(await (await get(dashboard, '/')).text()).toContain('id="provider-rows"')
    await dashboard.close()
  })
})

describe('createDashboard: protection', () => {
  test('POSTs need the CSRF header and must not come from another site', async () => {
    const h = harness(redis)
    const ids = await withDeadLetters(h)
    const dashboard = createDashboard({ queue: h.queue })
    const path = `/api/dead/${ids[0]}/retry`

    const attempts: Record<string, string>[] = [
      {},
      { 'x-mailstream-csrf': '1', 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-origin' },
    ]
    for (const headers of attempts) {
      const refused = await post(dashboard, path, headers)
      expect(refused.status).toBe(403)
      expect(await refused.json()).toMatchObject({ error: { code: 'E_CSRF' } })
    }
    expect((await post(dashboard, '/api/dead/retry-all', {})).status).toBe(403)
    expect((await post(dashboard, '/api/dead/purge', {})).status).toBe(403)
    expect((await h.queue.stats()).dead).toBe(3) // nothing changed

    const wrongMethod = await get(dashboard, path)
    expect(wrongMethod.status).toBe(405)
    expect(wrongMethod.headers.get('allow')).toBe('POST')

    const accepted = await post(dashboard, path, { 'x-mailstream-csrf': '1', 'sec-fetch-site': 'same-origin' })
    expect(accepted.status).toBe(200)
    expect((await h.queue.stats()).dead).toBe(2)
  })

  test('readOnly: no buttons, every POST refused, reads still work', async () => {
    const h = harness(redis)
    const ids = await withDeadLetters(h)
    const dashboard = createDashboard({ queue: h.queue, readOnly: true })
    const html = await (await get(dashboard, '/')).text()
    expect(html).toContain('data-read-only="true"')
    expect(html).not.toContain('id="retry-all"')
    expect(html).not.toContain('id="purge-all"')
    for (const path of [`/api/dead/${ids[0]}/retry`, '/api/dead/retry-all', '/api/dead/purge']) {
      const refused = await post(dashboard, path)
      expect(refused.status).toBe(403)
      expect(await refused.json()).toMatchObject({ error: { code: 'E_READ_ONLY' } })
    }
    expect((await h.queue.stats()).dead).toBe(3)
    expect((await get(dashboard, '/api/dead')).status).toBe(200)

    const writable = await (await get(createDashboard({ queue: h.queue }), '/')).text()
    expect(writable).toContain('data-read-only="false"')
    expect(writable).toContain('id="retry-all"')
  })

  test('authorize: 403 on every route when it says no or throws; it sees the request (and the Node req)', async () => {
    const h = harness(redis)
    const seen: { path: string; nodeUser?: string }[] = []
    const dashboard = createDashboard({
      queue: h.queue,
      authorize: (request, req) => {
        seen.push({ path: new URL(request.url).pathname, nodeUser: (req as { user?: string } | undefined)?.user })
        const token = request.headers.get('authorization')
        if (token === 'Bearer broken') throw new Error('auth backend down')
        return token === 'Bearer ops'
      },
    })
    for (const path of ['/', '/app.js', '/api/stats', '/api/dead', '/api/batches', '/api/events']) {
      const refused = await get(dashboard, path)
      expect(refused.status, path).toBe(403)
      expect(await refused.json()).toMatchObject({ error: { code: 'E_FORBIDDEN' } })
    }
    expect((await get(dashboard, '/api/stats', { headers: { authorization: 'Bearer broken' } })).status).toBe(403)
    expect((await get(dashboard, '/api/stats', { headers: { authorization: 'Bearer ops' } })).status).toBe(200)
    expect(seen.map((entry) => entry.path)).toContain('/api/events')

    // Through the Node handler, with what an authentication middleware put on req.
    const { url } = await serve((req: IncomingMessage, res: ServerResponse) => {
      Object.assign(req, { user: 'kim' })
      dashboard(req, res)
    })
    const response = await fetch(`${url}/api/stats`, { headers: { authorization: 'Bearer ops' } })
    expect(response.status).toBe(200)
    expect(seen.at(-1)).toEqual({ path: '/api/stats', nodeUser: 'kim' })
    await dashboard.close()
  })
})

describe('createDashboard: mounting', () => {
  test('Express-style mount: req.baseUrl, redirect to the slash, next() for what is not ours', async () => {
    const h = harness(redis)
    const ids = await withDeadLetters(h)
    const dashboard = createDashboard({ queue: h.queue })
    const { url } = await serve(
      expressStyleMount('/ops/mail', dashboard, (_req, res) => {
        res.statusCode = 404
        res.end('not mounted')
      }),
    )
    const page = await fetch(`${url}/ops/mail/`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('<script src="app.js" defer></script>')
    const redirect = await fetch(`${url}/ops/mail?x=1`, { redirect: 'manual' })
    expect(redirect.status).toBe(308)
    expect(redirect.headers.get('location')).toBe('mail/?x=1')
    expect(new URL(redirect.headers.get('location') as string, `${url}/ops/mail`).pathname).toBe('/ops/mail/')

    const stats = (await (await fetch(`${url}/ops/mail/api/stats`)).json()) as DashboardStats
    expect(stats.dead).toBe(3)
    const retried = await fetch(`${url}/ops/mail/api/dead/${ids[0]}/retry`, { method: 'POST', headers: CSRF })
    expect(await retried.json()).toEqual({ retried: 1 })

    const notOurs = await fetch(`${url}/ops/mail/nothing-here`)
    expect(notOurs.status).toBe(404)
    expect(await notOurs.text()).toBe('host 404')
    expect(await (await fetch(`${url}/elsewhere/api/stats`)).text()).toBe('not mounted')
  })

  test('plain http.createServer: served at the root, 404 JSON for other paths', async () => {
    const { queue } = harness(redis)
    const dashboard = createDashboard({ queue })
    const { url } = await serve(dashboard)
    expect((await fetch(`${url}/`)).status).toBe(200)
    expect((await fetch(`${url}/api/stats`)).status).toBe(200)
    const missing = await fetch(`${url}/favicon.ico`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ error: { code: 'E_NOT_FOUND' } })
  })

  test('Hono: app.all(path/*) with fetch, with and without basePath', async () => {
    const h = harness(redis)
    const ids = await withDeadLetters(h)
    const dashboard = createDashboard({ queue: h.queue })
    const app = new Hono()
    app.all('/admin/mail/*', (c) => dashboard.fetch(c.req.raw))
    app.get('/', (c) => c.text('home'))

    const redirect = await app.request('/admin/mail', { redirect: 'manual' })
    expect(redirect.status).toBe(308)
    expect(redirect.headers.get('location')).toBe('mail/')
    const page = await app.request('/admin/mail/')
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(((await (await app.request('/admin/mail/api/stats')).json()) as DashboardStats).dead).toBe(3)
    const dead = (await (await app.request('/admin/mail/api/dead')).json()) as { items: { id: string }[] }
    expect(dead.items.map((item) => item.id).sort()).toEqual([...ids.slice(0, 3)].sort())
    const retried = await app.request(`/admin/mail/api/dead/${ids[1]}/retry`, { method: 'POST', headers: CSRF })
    expect(await retried.json()).toEqual({ retried: 1 })
    expect(await (await app.request('/')).text()).toBe('home')

    const strict = createDashboard({ queue: h.queue, basePath: '/admin/mail/' })
    const strictApp = new Hono()
    strictApp.all('*', (c) => strict.fetch(c.req.raw))
    expect((await strictApp.request('/admin/mail/api/stats')).status).toBe(200)
    expect((await strictApp.request('/admin/mail', { redirect: 'manual' })).headers.get('location')).toBe('mail/')
    expect((await strictApp.request('/other/api/stats')).status).toBe(404)
    expect((await strictApp.request('/admin/mail/x/api/stats')).status).toBe(404)
  })
})

describe('createDashboard: live events', () => {
  test('api/events sends stats at once and every interval, the batch list, and progress up to done', async () => {
    const h = harness(redis)
    await h.queue.enqueueBatch(
      'live-1',
      Array.from({ length: 20 }, (_, i) => `r${i}@example.com`),
      undefined,
      { subject: 'News', text: 'Hi' },
    )
    const dashboard = createDashboard({ queue: h.queue, statsIntervalMs: 200 })
    const { url } = await serve(dashboard)
    const stream = await openEventStream(`${url}/api/events`)
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    await waitUntil(() => stream.of('batches').length > 0 && stream.of('stats').length >= 3, 5000, 'stats and batches')
    expect(stream.of<DashboardStats>('stats')[0]?.streams.low.waiting).toBe(20)
    expect(stream.of<{ items: { batchId: string; state: string }[] }>('batches')[0]?.items).toMatchObject([
      { batchId: 'live-1', state: 'sending', total: 20, completed: 0 },
    ])
    const channel = queueInternals(h.queue).keys.progress('live-1')
    await waitUntil(async () => ((await redis.pubsub('NUMSUB', channel)) as [string, number])[1] === 1)

    const worker = h.worker({ rateLimit: { perSecond: 40, burst: 1 } })
    await worker.start()
    await waitUntil(
      () => stream.of<{ done: boolean }>('progress').some((progress) => progress.done),
      15_000,
      'the final progress event',
    )
    const progress = stream.of<{ batchId: string; percentage: number; completed: number }>('progress')
    expect(progress.every((message) => message.batchId === 'live-1')).toBe(true)
    expect(progress.some((message) => message.percentage > 0 && message.percentage < 100)).toBe(true)
    expect(progress.at(-1)).toMatchObject({ percentage: 100, completed: 20, done: true })
    // Done: the dashboard stops following the batch.
    await waitUntil(async () => ((await redis.pubsub('NUMSUB', channel)) as [string, number])[1] === 0)
    await waitUntil(() => stream.of<DashboardStats>('stats').at(-1)?.totals.sent === 20, 5000, 'stats to show 20 sent')
    await stream.close()
  })

  test('a client that goes away is cleaned up: no timers, no progress subscription', async () => {
    const h = harness(redis)
    await h.queue.enqueueBatch('away-1', ['a@example.com', 'b@example.com'], undefined, { subject: 'N', text: 'T' })
    const dashboard = createDashboard({ queue: h.queue })
    const { url } = await serve(dashboard)
    const channel = queueInternals(h.queue).keys.progress('away-1')
    const numsub = async () => ((await redis.pubsub('NUMSUB', channel)) as [string, number])[1]

    const first = await openEventStream(`${url}/api/events`)
    const second = await openEventStream(`${url}/api/events`)
    await waitUntil(() => dashboard.connections === 2)
    await waitUntil(async () => (await numsub()) === 1)
    await first.close()
    await waitUntil(() => dashboard.connections === 1, 5000, 'one connection')
    expect(await numsub()).toBe(1) // still followed for the other page
    const before = second.of('stats').length
    await waitUntil(() => second.of('stats').length > before, 5000, 'stats for the page left open')
    await second.close()
    await waitUntil(() => dashboard.connections === 0, 5000, 'no connections')
    await waitUntil(async () => (await numsub()) === 0, 5000, 'the progress subscription to end')

    // close() ends open streams too.
    const third = await openEventStream(`${url}/api/events`)
    await waitUntil(() => dashboard.connections === 1)
    await dashboard.close()
    expect(dashboard.connections).toBe(0)
    await waitUntil(async () => (await numsub()) === 0)
    expect((await fetch(`${url}/api/stats`)).status).toBe(503)
    await third.close()
  })
})
