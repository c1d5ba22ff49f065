import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { BUILTIN_TEMPLATE_NAMES, createTemplateRenderer, type TemplateRendererOptions } from '../../src/index.js'
import { chromiumSkipped, launchChromium } from '../helpers/chromium.js'

// The built-in layout in a real browser (test/helpers/chromium.ts: skipped without Chromium, except on CI).
const skipped = chromiumSkipped('layout-browser')

// What makes a phone layout wider than the phone: a tracking link, a Korean sentence without
// spaces (keep-all keeps it whole), a 1040 px banner, and a table wider than the screen.
const LONG_URL = `https://vality.kr/r/${'a1B2c3D4e5'.repeat(20)}?utm_source=newsletter&utm_medium=email&utm_campaign=spring`
const KOREAN_RUN = '가나다라마바사아자차카타파하'.repeat(6)
const WIDE_IMAGE = '/img/banner.svg'
const DARK_LOGO = '/img/logo.svg'

const svg = (width: number, height: number, fill: string, background = '') =>
  `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
  (background ? `<rect width="${width}" height="${height}" fill="${background}"/>` : '') +
  `<rect x="${width / 8}" y="${height / 4}" width="${(width * 3) / 4}" height="${height / 2}" fill="${fill}"/></svg>`

const body = (origin: string) =>
  [
    `## ${KOREAN_RUN}`,
    '',
    `${KOREAN_RUN} ${LONG_URL}`,
    '',
    `자세히 보기: <${LONG_URL}>`,
    '',
    `![봄 배너](${origin}${WIDE_IMAGE})`,
    '',
    `<img src="${origin}${WIDE_IMAGE}" width="1040" height="300" alt="wide">`,
    '',
    '| 구독자 수 (Subscribers) | 열람률 (Open rate) | 클릭률 (Click rate) | 수신 거부 (Unsubscribed) | 링크 |',
    '| --- | --- | --- | --- | --- |',
    `| 120,000 | 41.2% | 7.9% | 0.12% | ${LONG_URL} |`,
    `| ${KOREAN_RUN} | 1 | 2 | 3 | <${LONG_URL}> |`,
    '',
    `- ${LONG_URL}`,
    `> ${KOREAN_RUN}`,
    '',
    '```',
    `curl ${LONG_URL}`,
    '```',
    '',
    `\`${LONG_URL}\``,
  ].join('\n')

const data = (origin: string): Record<string, Record<string, unknown>> => ({
  'verification-code': { code: '482913', name: KOREAN_RUN },
  'subscription-confirm': { confirmUrl: LONG_URL, name: KOREAN_RUN },
  'subscription-cancel': { resubscribeUrl: LONG_URL, name: KOREAN_RUN },
  welcome: { name: KOREAN_RUN, ctaUrl: LONG_URL },
  'newsletter-issue': {
    title: KOREAN_RUN,
    body: body(origin),
    name: KOREAN_RUN,
    issueUrl: LONG_URL,
    preheader: KOREAN_RUN,
  },
  'consent-notice': {
    senderName: KOREAN_RUN,
    change: 'consented',
    consented: true,
    date: '2026년 12월 3일',
    method: KOREAN_RUN,
    name: KOREAN_RUN,
    manageUrl: LONG_URL,
  },
  'consent-reminder': {
    senderName: KOREAN_RUN,
    consentedDate: '2024년 12월 3일',
    keepUrl: LONG_URL,
    withdrawUrl: LONG_URL,
    name: KOREAN_RUN,
  },
})

const job = { id: 'job-1', type: 'newsletter', to: [{ address: 'reader@example.com' }] }

let context: BrowserContext
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined
let server: Server
let origin: string
const pages = new Map<string, string>()

beforeAll(async () => {
  if (skipped) return
  server = createServer((req, res) => {
    if (req.url === WIDE_IMAGE)
      return res.writeHead(200, { 'content-type': 'image/svg+xml' }).end(svg(1040, 300, '#3b5bdb', '#dbe4ff'))
    if (req.url === DARK_LOGO)
      return res.writeHead(200, { 'content-type': 'image/svg+xml' }).end(svg(160, 32, '#111111'))
    const html = pages.get(req.url ?? '')
    if (html === undefined) return res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  browser = await launchChromium('layout browser tests')
  context = browser.context
}, 60_000)

afterAll(async () => {
  await browser?.close()
  if (server) await new Promise<void>((resolve) => server.close(() => resolve()))
})

const renderer = (options: TemplateRendererOptions = {}) =>
  createTemplateRenderer({
    defaults: {
      brandName: 'Vality',
      frontendUrl: 'https://newsletter.vality-community-platform.co.kr/ko/home',
      ...options.defaults,
    },
    unsubscribe: { secret: 'test-secret-0123456789abcdef', mailto: 'unsubscribe@vality.kr' },
    ...(options.templates && { templates: options.templates }),
  })

/** Opens rendered HTML at a phone's width and reads how wide the page really is. */
async function scrollWidthOf(html: string, width: number): Promise<number> {
  const path = `/email/${pages.size}`
  pages.set(path, html)
  const page = await context.newPage()
  try {
    await page.setViewportSize({ width, height: 800 })
    await page.goto(`${origin}${path}`, { waitUntil: 'load' })
    // A string, evaluated in the page: this project's TypeScript has no DOM types.
    return Number(await page.evaluate('document.documentElement.scrollWidth'))
  } finally {
    await page.close()
  }
}

describe.skipIf(skipped)('built-in layout in Chromium', () => {
  const templates = renderer()
  afterAll(() => templates.close())

  const cases = BUILTIN_TEMPLATE_NAMES.flatMap((name) => ['ko', 'en'].map((locale) => [name, locale] as const))
  test.each(cases)('%s (%s) is no wider than a 320 or 375 px phone', async (name, locale) => {
    const rendered = await templates.render(name, data(origin)[name] as Record<string, unknown>, { locale, job })
    const html = rendered.html as string
    // Some apps (Gmail with another provider's account) drop the <style> block, media queries and all.
    const unstyled = html.replace(/<style>[\s\S]*?<\/style>/g, '')
    for (const width of [320, 375]) {
      expect.soft(await scrollWidthOf(html, width), `${name} ${locale} at ${width} px`).toBe(width)
      expect.soft(await scrollWidthOf(unstyled, width), `${name} ${locale} at ${width} px, no <style>`).toBe(width)
    }
  })

  test('an ordinary Korean issue with one long tracking link fits a 375 px phone', async () => {
    const body = `이번 호에서는 봄 소식을 전해 드립니다.\n\n자세한 내용은 ${LONG_URL} 에서 확인하세요.`
    const rendered = await templates.render('newsletter-issue', { title: '3월호', body }, { locale: 'ko', job })
    expect(await scrollWidthOf(rendered.html as string, 375)).toBe(375)
  })
})

describe.skipIf(skipped)('logo in Chromium', () => {
  const templates = renderer({
    defaults: { logoUrl: `http://logo.invalid${DARK_LOGO}`, logoUrlDark: 'http://logo.invalid/light.svg' },
  })
  afterAll(() => templates.close())

  /** Which logo shows, and what is behind it, as a mail app that darkens the email marks it (or not). */
  async function logoState(html: string, darkened: boolean) {
    const path = `/email/${pages.size}`
    pages.set(path, html)
    const page = await context.newPage()
    try {
      await page.goto(`${origin}${path}`)
      if (darkened) {
        // Outlook.com marks what it recolours with data-ogsc (text) and data-ogsb (backgrounds).
        await page.evaluate("document.body.setAttribute('data-ogsc', ''); document.body.setAttribute('data-ogsb', '')")
      }
      return (await page.evaluate(`(() => {
        const shown = (selector) => {
          const element = document.querySelector(selector)
          return element ? getComputedStyle(element).display !== 'none' : false
        }
        const backing = getComputedStyle(document.querySelector('.logo-backing')).backgroundColor
        return { light: shown('.logo-light'), dark: shown('.logo-dark'), backing }
      })()`)) as { light: boolean; dark: boolean; backing: string }
    } finally {
      await page.close()
    }
  }

  test('the light logo on a white backing by default; the dark logo, unbacked, where the app darkens', async () => {
    const html = (await templates.render('welcome', {}, { locale: 'ko', job })).html as string
    expect(await logoState(html, false)).toEqual({ light: true, dark: false, backing: 'rgb(255, 255, 255)' })
    expect(await logoState(html, true)).toEqual({ light: false, dark: true, backing: 'rgba(0, 0, 0, 0)' })
  })
})
