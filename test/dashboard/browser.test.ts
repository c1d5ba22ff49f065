import { randomBytes } from 'node:crypto'
import type { BrowserContext, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { createDashboard, type Dashboard } from '../../src/dashboard/index.js'
import { createEmailQueue, createTemplateRenderer } from '../../src/index.js'
import { queueInternals } from '../../src/queue/internals.js'
import { chromiumSkipped, launchChromium } from '../helpers/chromium.js'
import { serve } from '../helpers/http.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'

// The dashboard in a real browser (test/helpers/chromium.ts: skipped without Chromium, except on CI).
const skipped = chromiumSkipped('dashboard/browser')
const redis = connect()
let context: BrowserContext
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined

beforeAll(async () => {
  if (skipped) return
  browser = await launchChromium('dashboard browser tests')
  context = browser.context
}, 60_000)

afterAll(async () => {
  await browser?.close()
})

const pages: Page[] = []
const dashboards: Dashboard[] = []
const pageErrors: string[] = []
afterEach(async () => {
  await Promise.all(pages.splice(0).map((page) => page.close()))
  await Promise.all(dashboards.splice(0).map((dashboard) => dashboard.close()))
  expect(pageErrors.splice(0), 'errors in the page').toEqual([])
})

/** Opens the dashboard and fails the test on any script error in the page. */
async function open(dashboard: Dashboard, path = '/ops/'): Promise<Page> {
  dashboards.push(dashboard)
  const { url } = await serve((req, res) => {
    // Mounted under /ops the way Express mounts it, to show that the page's URLs are relative.
    if (!req.url?.startsWith('/ops')) return res.writeHead(404).end()
    Object.assign(req, { originalUrl: req.url, baseUrl: '/ops', url: req.url.slice(4) || '/' })
    dashboard(req, res)
  })
  const page = await context.newPage()
  pages.push(page)
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text())
  })
  await page.goto(`${url}${path}`)
  await expect.poll(() => text(page, '#connection')).toBe('live')
  return page
}

// Polled from outside the page: the page's CSP forbids evaluating strings in it.
const text = async (page: Page, selector: string) => (await page.locator(selector).textContent()) ?? ''
const number = async (page: Page, selector: string) => Number((await text(page, selector)).replace(/,/g, ''))
const attribute = (page: Page, selector: string, name: string) => page.locator(selector).getAttribute(name)

describe.skipIf(skipped)('dashboard in Chromium', () => {
  test('the page loads and its counts match queue.stats()', async () => {
    const h = harness(redis)
    h.transport.failNext('never', 3)
    const ids = (
      await h.queue.enqueueMany(
        Array.from({ length: 8 }, (_, i) => ({ type: 'welcome', to: `r${i}@ex.com`, subject: 'Hi', text: 'x' })),
      )
    ).map((result) => result.id)
    const worker = h.worker({ concurrency: 1 })
    await worker.start()
    await Promise.all(ids.map((id) => h.settled(id)))
    await worker.stop()
    const waiting = (i: number, extra: object = {}) => ({
      type: 'welcome',
      to: `w${i}@ex.com`,
      subject: 'Hi',
      text: 'x',
      ...extra,
    })
    await h.queue.enqueueMany([
      waiting(1, { priority: 'high' }),
      ...[2, 3, 4, 5, 6].map((i) => waiting(i)),
      ...[7, 8, 9, 10].map((i) => waiting(i, { priority: 'low' })),
      waiting(11, { delayMs: 600_000 }),
      waiting(12, { delayMs: 600_000 }),
    ])
    await h.queue.suppression.add('gone@ex.com', 'bounce')
    // A worker that took two entries and died: they stay in flight until reclaimed.
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

    const page = await open(createDashboard({ queue: h.queue }))
    await expect.poll(() => text(page, '[data-stat="dead"]')).toBe('3')
    const stats = await h.queue.stats()

    expect(await number(page, '[data-stat="waiting"]')).toBe(1 + 3 + 4)
    expect(await number(page, '[data-stat="inFlight"]')).toBe(2)
    expect(await number(page, '[data-stat="delayed"]')).toBe(stats.delayed)
    expect(await number(page, '[data-stat="dead"]')).toBe(stats.dead)
    expect(await number(page, '[data-stat="suppressed"]')).toBe(stats.suppressed)
    expect(await number(page, '[data-stat="sent"]')).toBe(stats.totals.sent)
    expect(await number(page, '[data-stat="failed"]')).toBe(stats.totals.failed)
    for (const [priority, stream] of Object.entries(stats.streams)) {
      for (const field of ['length', 'waiting', 'pending', 'consumers'] as const) {
        const shown = await number(page, `#streams tr[data-priority="${priority}"] [data-field="${field}"]`)
        expect(shown, `${priority} ${field}`).toBe(stream[field])
      }
    }
    for (const [name, value] of Object.entries(stats.totals)) {
      if ((await page.locator(`[data-total="${name}"]`).count()) === 0) continue
      expect(await number(page, `[data-total="${name}"]`), name).toBe(value)
    }
    expect(stats).toMatchObject({ delayed: 2, dead: 3, suppressed: 1, totals: { sent: 5, failed: 3 } })
    expect(await text(page, '#streams tr[data-priority="normal"] [data-field="oldestWaitingMs"]')).toMatch(/^\d+ s$/)
    expect(await page.locator('#dead-rows tr').count()).toBe(3)
  })

  test('hard-bounce and complaint rates are marked at the levels where SES reviews or pauses an account', async () => {
    const h = harness(redis)
    // Counters as the workers and the SES webhook handler keep them.
    await redis.hset(queueInternals(h.queue).keys.stats, {
      sent: 1000,
      bounced: 80,
      bouncedPermanent: 60,
      complained: 6,
      delivered: 900,
    })
    const page = await open(createDashboard({ queue: h.queue }))
    await expect.poll(() => text(page, '[data-rate="hardBounceRate"]')).toBe('6.00%')
    const classes = async (name: string) => (await attribute(page, `[data-rate="${name}"]`, 'class')) ?? ''
    expect(await classes('hardBounceRate')).toBe('warn') // 5 % review, 10 % pause
    expect(await text(page, '[data-rate="complaintRate"]')).toBe('0.60%')
    expect(await classes('complaintRate')).toBe('bad') // 0.1 % review, 0.5 % pause
    expect(await text(page, '[data-rate="bounceRate"]')).toBe('8.00%')
    expect(await classes('bounceRate')).toBe('') // every bounce, soft ones too: shown, not judged
    expect(await text(page, '[data-rate="deliveryRate"]')).toBe('90.00%')
    expect(await number(page, '[data-total="bouncedPermanent"]')).toBe(60)
  })

  test('a dead letter is retried by clicking, and HTML in a subject, an error and the title stays text', async () => {
    const h = harness(redis)
    const subject = '<img src=x onerror="window.__xss=1"><b>bold</b> & <script>window.__xss=2</script>'
    h.transport.failNext('never', 1, { message: 'rejected <img src=x onerror="window.__xss=3">' })
    const { id } = await h.queue.enqueue({ type: 'welcome', to: 'kim@example.com', subject, text: 'Hi' })
    const worker = h.worker()
    await worker.start()
    expect((await h.settled(id)).status).toBe('dead')

    const page = await open(createDashboard({ queue: h.queue, title: '<b>Mail</b> & ops' }))
    const row = page.locator(`#dead-rows tr[data-id="${id}"]`)
    await row.waitFor()
    expect(await row.locator('[data-field="subject"]').textContent()).toBe(subject)
    expect(await row.locator('[data-field="error"]').textContent()).toBe(
      '[mailstream] rejected <img src=x onerror="window.__xss=3">',
    )
    expect(await page.locator('main img, main b, main script').count()).toBe(0)
    expect(await page.evaluate('window.__xss')).toBeUndefined()
    expect(await text(page, 'h1')).toBe('<b>Mail</b> & ops')
    expect(await page.title()).toBe('<b>Mail</b> & ops')
    expect(await page.locator('h1 b').count()).toBe(0)

    await row.getByRole('button', { name: `Retry ${id}` }).click()
    await row.waitFor({ state: 'detached' })
    expect(await text(page, '#notice')).toBe(`Retried ${id} (1)`)
    expect((await h.settled(id)).status).toBe('sent')
    expect(h.transport.find({ jobId: id })?.message.subject).toBe(subject)
    // The live stats follow: no dead letters left, and the list says so.
    await expect.poll(() => text(page, '[data-stat="dead"]')).toBe('0')
    await page.locator('#dead-empty').waitFor({ state: 'visible' })
    expect(await page.evaluate('window.__xss')).toBeUndefined()
  })

  test('advertising: sent counted apart on the overview, and an advertising batch labelled', async () => {
    const h = harness(redis)
    const sender = { name: 'Vality', email: 'ad@vality.kr', phone: '02-1234-5678', address: 'Seoul' }
    const adQueue = createEmailQueue({
      redis,
      prefix: h.prefix,
      advertising: {
        sender,
        consent: (addresses) => addresses.map((address) => ({ address, consentedAt: 0 })),
        quietHours: false,
      },
    })
    const recipients = ['a@example.com', 'b@example.com', 'c@example.com']
    const options = { template: 'welcome', locale: 'en' }
    await adQueue.enqueueBatch('promo-1', recipients, undefined, { ...options, advertising: true })
    await adQueue.enqueueBatch('issue-1', ['d@example.com'], undefined, options)
    await adQueue.close()
    const templates = createTemplateRenderer({
      defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
      unsubscribe: { secret: 'a-secret-of-at-least-16-characters' },
    })
    const worker = h.worker({ templates, advertising: { sender } })
    await worker.start()
    await h.transport.waitForCount(4)
    await worker.stop()

    const page = await open(createDashboard({ queue: h.queue }))
    await expect.poll(() => text(page, '[data-stat="sent"]')).toBe('4')
    expect(await number(page, '[data-stat="advertisingSent"]')).toBe(3)
    expect(await number(page, '[data-total="advertisingSent"]')).toBe(3)
    await page.locator('[data-batch-id="promo-1"]').waitFor()
    expect(await text(page, '[data-batch-id="promo-1"] [data-field="advertising"]')).toBe('advertising')
    expect(await page.locator('[data-batch-id="issue-1"] [data-field="advertising"]').count()).toBe(0)
  })

  test("a batch's progress bar moves live and reaches 100 % while a worker sends it", async () => {
    const h = harness(redis)
    const batchId = `issue-${randomBytes(3).toString('hex')}`
    const recipients = Array.from({ length: 40 }, (_, i) => `reader${i}@example.com`)
    await h.queue.enqueueBatch(batchId, recipients, undefined, { subject: 'Issue', text: 'Hello' })

    const page = await open(createDashboard({ queue: h.queue }))
    const batch = page.locator(`#batch-list [data-batch-id="${batchId}"]`)
    const bar = batch.getByRole('progressbar', { name: `Batch ${batchId}` })
    await bar.waitFor()
    expect(await bar.getAttribute('aria-valuenow')).toBe('0')
    expect(await text(page, `[data-batch-id="${batchId}"] [data-field="state"]`)).toBe('sending')
    // Every value the bar takes, without reloading anything.
    await page.evaluate(`(() => {
      const bar = document.querySelector('[data-batch-id="${batchId}"] [role="progressbar"]')
      window.__seen = []
      new MutationObserver(() => window.__seen.push(Number(bar.getAttribute('aria-valuenow'))))
        .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] })
    })()`)

    const worker = h.worker({ rateLimit: { perSecond: 20, burst: 1 } })
    await worker.start()
    await expect
      .poll(() => attribute(page, `[data-batch-id="${batchId}"] [role="progressbar"]`, 'aria-valuenow'), {
        timeout: 20_000,
      })
      .toBe('100')
    const seen = (await page.evaluate('window.__seen')) as number[]
    expect(seen.some((value) => value > 0 && value < 100)).toBe(true)
    expect(seen).toEqual([...seen].sort((a, b) => a - b))
    expect(await bar.locator('.fill').getAttribute('style')).toContain('width: 100%')
    expect(await text(page, `[data-batch-id="${batchId}"] [data-field="counts"]`)).toMatch(/^40 of 40 \(100%\)/)
    await expect.poll(() => text(page, `[data-batch-id="${batchId}"] [data-field="state"]`)).toBe('finished')
    expect(await h.queue.getBatch(batchId)).toMatchObject({ state: 'finished', sent: 40 })
  })
  test("a batch's A/B test: state badge, one row per variant, the tested metric, Decide now, then the winner", async () => {
    const h = harness(redis)
    const recipients = Array.from({ length: 30 }, (_, i) => `ab${i}@example.com`)
    const result = await h.queue.enqueueBatch('ab-page', recipients, undefined, {
      text: 'Hello',
      variants: [{ subject: 'Subject <b>A</b>' }, { subject: 'Subject B' }],
      test: { share: 0.5, decideAfter: '2h', metric: 'opens', minSample: 1000 },
    })
    const worker = h.worker({ concurrency: 10 })
    await worker.start()
    await h.transport.waitForCount(result.enqueued)

    const page = await open(createDashboard({ queue: h.queue, batches: ['ab-page'] }))
    const ab = '[data-batch-id="ab-page"] [data-field="abTest"]'
    await page.locator(ab + ' .ab-table').waitFor()
    expect(await text(page, ab + ' [data-field="abState"]')).toBe('testing')
    expect(await text(page, ab + ' [data-field="decideAt"]')).toMatch(/^decides /)
    expect(await page.locator(ab + ' tbody tr').count()).toBe(2)
    // The subject is text, never HTML.
    expect(await text(page, ab + ' tr[data-variant="0"] [data-field="subject"]')).toBe('Subject <b>A</b>')
    expect(await page.locator(ab + ' b').count()).toBe(0)
    // Opens are tested: their column is highlighted, clicks are not.
    expect(await attribute(page, ab + ' tr[data-variant="0"] [data-field="opened"]', 'class')).toBe('metric')
    expect(await attribute(page, ab + ' tr[data-variant="0"] [data-field="clicked"]', 'class')).toBeNull()
    // Both below minSample: greyed.
    expect(await page.locator(ab + ' tr.under-sample').count()).toBe(2)
    await expect
      .poll(
        async () =>
          (await number(page, ab + ' tr[data-variant="0"] [data-field="sent"]')) +
          (await number(page, ab + ' tr[data-variant="1"] [data-field="sent"]')),
      )
      .toBe(result.enqueued)

    page.on('dialog', (dialog) => void dialog.accept())
    await page.getByRole('button', { name: 'Decide ab-page now' }).click()
    await expect
      .poll(() => text(page, ab + ' [data-field="abDecision"]'), { timeout: 10_000 })
      .toMatch(/^Winner A \(no variant reached/)
    await h.transport.waitForCount(30)
    await expect.poll(() => text(page, ab + ' [data-field="abState"]'), { timeout: 10_000 }).toBe('done')
    expect(await text(page, ab + ' [data-field="abDecision"]')).toContain(
      `released ${result.held} of ${result.held} held`,
    )
    expect(await page.locator(ab + ' tr.winner[data-variant="0"]').count()).toBe(1)
    expect(await page.getByRole('button', { name: 'Decide ab-page now' }).count()).toBe(0)
  })
})
