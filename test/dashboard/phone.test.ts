import type { BrowserContext, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { createDashboard, type Dashboard } from '../../src/dashboard/index.js'
import { chromiumSkipped, launchChromium } from '../helpers/chromium.js'
import { serve } from '../helpers/http.js'
import { type Harness, harness } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

// The dashboard on a phone-sized screen (390 x 844 CSS pixels, as an iPhone 12 to 15), in the same
// headless Chromium as browser.test.ts (skipped without Chromium, except on CI).
const skipped = chromiumSkipped('dashboard/phone')
const PHONE = { width: 390, height: 844 }
const redis = connect()
let context: BrowserContext
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined

beforeAll(async () => {
  if (skipped) return
  browser = await launchChromium('dashboard phone tests', {
    viewport: PHONE,
    deviceScaleFactor: 3,
    isMobile: true,
    hasTouch: true,
  })
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

async function open(dashboard: Dashboard): Promise<Page> {
  dashboards.push(dashboard)
  const { url } = await serve((req, res) => dashboard(req, res))
  const page = await context.newPage()
  pages.push(page)
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text())
  })
  await page.goto(`${url}/`)
  await expect.poll(() => page.locator('#connection').textContent()).toBe('live')
  return page
}

const longError =
  'SMTP 550 5.1.1 <kim.minji.newsletter.subscriber@example-mail-provider.co.kr>: Recipient address rejected: ' +
  'User unknown in virtual mailbox table (retrying will not help)'

/** Three dead letters and three jobs waiting for a retry, with long ids, addresses and errors. */
async function fill(h: Harness): Promise<{ dead: string[]; retrying: string[] }> {
  const job = (i: number, id: string) => ({
    id,
    type: 'order-confirmation',
    to: [`kim.minji.newsletter.subscriber${i}@example-mail-provider.co.kr`, `lee.seojun${i}@example.com`],
    subject: `주문이 확인되었습니다 — 주문번호 2026-11-${i}0042, 배송 예정일을 확인하세요`,
    text: 'x',
  })
  h.transport.failNext('never', 3, { message: longError })
  const dead: string[] = []
  for (let i = 0; i < 3; i++) {
    dead.push((await h.queue.enqueue(job(i, `order-2026-11-confirmation-${i}-01JD7Q9X2M3N4P5R6S7T8V9W0`))).id)
  }
  const worker = h.worker({ concurrency: 1, backoff: { baseMs: 600_000, maxMs: 600_000 } })
  await worker.start()
  for (const id of dead) expect((await h.settled(id)).status).toBe('dead')
  h.transport.failNext('later', 3, { message: longError })
  const retrying: string[] = []
  for (let i = 3; i < 6; i++) {
    retrying.push((await h.queue.enqueue(job(i, `order-2026-11-confirmation-${i}-01JD7Q9X2M3N4P5R6S7T8V9W0`))).id)
  }
  await waitUntil(
    async () => {
      const states = await Promise.all(retrying.map((id) => h.queue.getStatus(id)))
      return states.every((state) => state?.status === 'retrying')
    },
    10_000,
    'the retries',
  )
  await worker.stop()
  return { dead, retrying }
}

interface Styled {
  getComputedStyle(node: unknown, pseudo?: string): Record<string, string>
}

/** A computed style property of the first element `selector` matches. */
function style(page: Page, selector: string, property: string, pseudo?: string): Promise<string> {
  return page
    .locator(selector)
    .first()
    .evaluate(
      (node, [name, element]) =>
        (globalThis as unknown as Styled).getComputedStyle(node, element)[name as string] ?? '',
      [property, pseudo] as const,
    )
}

/** Whether the element is inside the phone's screen horizontally (scrolled into view vertically). */
async function onScreen(page: Page, selector: string, screenWidth = PHONE.width): Promise<boolean> {
  // The page redraws its tables on every live update: an element found may be replaced before it
  // is measured, so measure again (a few times) rather than fail on a detached element.
  for (let tries = 1; ; tries++) {
    try {
      const locator = page.locator(selector).first()
      await locator.scrollIntoViewIfNeeded()
      const box = await locator.boundingBox()
      return box !== null && box.x >= 0 && box.x + box.width <= screenWidth && box.width > 0
    } catch (error) {
      if (tries >= 5 || !/not attached/i.test(String(error))) throw error
    }
  }
}

describe.skipIf(skipped)('dashboard on a 390 x 844 phone screen', () => {
  test('the page does not scroll sideways, ids stay readable and every Retry button is on screen', async () => {
    const h = harness(redis)
    const { dead, retrying } = await fill(h)
    const page = await open(createDashboard({ queue: h.queue }))
    await expect.poll(() => page.locator('#dead-rows tr').count()).toBe(3)
    await expect.poll(() => page.locator('#failure-rows tr').count()).toBe(3)

    const width = (await page.evaluate('document.documentElement.scrollWidth')) as number
    expect(width, 'page width at 390 px').toBeLessThanOrEqual(PHONE.width)
    expect(await page.evaluate('document.body.scrollWidth')).toBeLessThanOrEqual(PHONE.width)

    for (const id of dead) {
      const row = `#dead-rows tr[data-id="${id}"]`
      expect(await onScreen(page, `${row} button.retry`), `Retry ${id}`).toBe(true)
      // The id is whole (a phone has no hover to show a title), on at most two lines, and in its title.
      const cell = page.locator(`${row} [data-field="id"]`)
      expect(await cell.getAttribute('title')).toBe(id)
      expect(await cell.textContent()).toBe(id)
      const box = await cell.boundingBox()
      const line = Number.parseFloat(await style(page, `${row} [data-field="id"]`, 'lineHeight'))
      expect(box?.width, `width of ${id}`).toBeGreaterThan(200)
      expect(Math.round((box?.height ?? 0) / line), `lines of ${id}`).toBeLessThanOrEqual(3)
      expect(await onScreen(page, `${row} [data-field="error"]`)).toBe(true)
      expect(await onScreen(page, `${row} [data-field="subject"]`)).toBe(true)
    }
    for (const id of retrying) {
      const row = `#failure-rows tr[data-id="${id}"]`
      expect(await page.locator(`${row} [data-field="id"]`).getAttribute('title')).toBe(id)
      expect(await onScreen(page, `${row} [data-field="dueAt"]`)).toBe(true)
      expect(await onScreen(page, `${row} [data-field="error"]`)).toBe(true)
    }
    // Each value is labelled in the stacked rows, as the table header labels it on a wide screen.
    const attempts = `#dead-rows tr[data-id="${dead[0]}"] [data-field="attempts"]`
    expect(await style(page, attempts, 'content', '::before')).toBe('"attempts"')
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(PHONE.width)

    // A tap retries the letter, as a click does on the desktop.
    await page.locator(`#dead-rows tr[data-id="${dead[1]}"] button.retry`).tap()
    await page.locator(`#dead-rows tr[data-id="${dead[1]}"]`).waitFor({ state: 'detached' })
    expect(await page.locator('#notice').textContent()).toBe(`Retried ${dead[1]} (1)`)
  })

  test('wide screens keep the tables, with ids that do not wrap every two characters; tablets get the cards', async () => {
    const h = harness(redis)
    await fill(h)
    const page = await open(createDashboard({ queue: h.queue }))
    await page.setViewportSize({ width: 1280, height: 900 })
    await expect.poll(() => page.locator('#dead-rows tr').count()).toBe(3)
    expect(await style(page, '#dead thead', 'display')).toBe('table-header-group')
    expect(await style(page, '#dead-rows tr', 'display')).toBe('table-row')
    expect(await style(page, '#failure-rows tr', 'display')).toBe('table-row')
    for (const width of [1440, 1100]) {
      await page.setViewportSize({ width, height: 900 })
      // An id keeps room for a readable line, and what does not fit scrolls inside its section.
      expect((await page.locator('#dead-rows [data-field="id"]').first().boundingBox())?.width).toBeGreaterThan(150)
      expect(
        await page.evaluate('document.documentElement.scrollWidth'),
        `page width at ${width} px`,
      ).toBeLessThanOrEqual(width)
      expect(await onScreen(page, '#dead-rows button.retry', width), `Retry at ${width} px`).toBe(true)
    }
    // A tablet gets the cards too.
    await page.setViewportSize({ width: 1024, height: 768 })
    expect(await style(page, '#dead-rows tr', 'display')).toBe('grid')
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(1024)
  })
})
