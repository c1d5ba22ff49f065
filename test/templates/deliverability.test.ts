import { afterAll, describe, expect, test } from 'vitest'
import { createTemplateRenderer, type TemplateRendererOptions } from '../../src/index.js'

const renderer = (options: TemplateRendererOptions = {}) =>
  createTemplateRenderer({
    defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr', ...options.defaults },
    unsubscribe: { secret: 'test-secret-0123456789abcdef' },
  })
const job = { id: 'job-1', type: 'newsletter', to: [{ address: 'reader@example.com' }] }
const templates = renderer()
afterAll(() => templates.close())

const issue = (body: string, extra: Record<string, unknown> = {}, locale = 'ko') =>
  templates.render('newsletter-issue', { title: '3월호', body, ...extra }, { locale, job })

const imgTags = (html: string) => html.match(/<img [^>]*>/g) ?? []

describe('Outlook', () => {
  test('every Markdown image has a pixel width within the 520 px content width, and no height="auto"', async () => {
    const body = [
      '![banner](https://vality.kr/banner.png)',
      '<img src="https://vality.kr/wide.png" width="1040" height="300" alt="wide">',
      '<img src="https://vality.kr/icon.png" width="24" height="24" alt="icon">',
      '<img src="https://vality.kr/pct.png" width="50%" alt="percent">',
    ].join('\n\n')
    const html = (await issue(body)).html as string
    const images = imgTags(html).filter((tag) => !tag.includes('width="1"'))
    expect(images).toHaveLength(4)
    expect(html).not.toContain('height="auto"')
    const widths = images.map((tag) => /\swidth="(\d+)"/.exec(tag)?.[1])
    expect(widths).toEqual(['520', '520', '24', '520'])
    for (const tag of images) {
      expect(tag).not.toMatch(/\sheight=/)
      expect(tag).toMatch(/style="[^"]*max-width: 100%/)
    }
  })

  test('buttons are padded cells: the padding is on the <td>, not on the <a>', async () => {
    for (const [name, data] of [
      ['subscription-confirm', { confirmUrl: 'https://vality.kr/confirm?t=1' }],
      ['subscription-cancel', { resubscribeUrl: 'https://vality.kr/subscribe' }],
      ['welcome', {}],
    ] as const) {
      for (const locale of ['ko', 'en']) {
        const html = (await templates.render(name, data, { locale, job })).html as string
        expect(html, name).toMatch(
          /<td class="button-cell"[^>]* style="padding: 14px 28px;[^"]*background-color: #3b5bdb/,
        )
        expect(html, name).toMatch(/<td class="button-cell"[^>]* bgcolor="#3b5bdb"/)
        const button = /<a class="button"[^>]*>/.exec(html)?.[0] as string
        expect(button, name).not.toMatch(/padding/)
        expect(button, name).toMatch(/display: inline-block/)
      }
    }
  })

  test('the 600 px column is fluid, with a fixed-width table for Outlook only', async () => {
    const html = (await templates.render('welcome', {}, { job })).html as string
    expect(html).toContain('<!--[if mso]><table role="presentation" width="600"')
    expect(html).toMatch(/<table role="presentation" class="container" width="100%"[^>]*max-width: 600px/)
  })
})

describe('preheader', () => {
  test('hidden without a colour of its own (HTML_FONT_LOW_CONTRAST), padded with filler', async () => {
    const html = (await issue('Body', { preheader: '봄 소식을 전해 드립니다' })).html as string
    const span = /<span class="preheader" style="([^"]*)">([^<]*)<\/span>/.exec(html)
    expect(span).not.toBeNull()
    const [, style, content] = span as unknown as [string, string, string]
    expect(style).toContain('display: none')
    expect(style).not.toMatch(/(^|;)\s*color:/)
    expect(html).not.toMatch(/(?<!-)color: #f4f5f7/i)
    expect(content.startsWith('봄 소식을 전해 드립니다&#847;&zwnj;&nbsp;')).toBe(true)
    expect(content.split('&zwnj;').length - 1).toBeGreaterThanOrEqual(60)
    // The filler comes before "웹에서 보기" and the rest of the page.
    expect(html.indexOf('preheader')).toBeLessThan(html.indexOf('class="wrapper"'))
  })

  test('no preheader, no hidden line; a verification code previews as the code', async () => {
    expect((await issue('Body')).html).not.toContain('class="preheader"')
    for (const locale of ['ko', 'en']) {
      const code = await templates.render('verification-code', { code: '482913' }, { locale, job })
      expect(code.html).toMatch(/<span class="preheader"[^>]*>482913&#847;/)
      expect(code.text).not.toContain('&zwnj;')
      const own = await templates.render('verification-code', { code: '482913', preheader: 'Hi' }, { locale, job })
      expect(own.html).toMatch(/<span class="preheader"[^>]*>Hi&#847;/)
    }
  })
})

describe('logo in dark mode', () => {
  test('the logo sits on a light backing; logoUrlDark adds a dark-mode logo hidden by default', async () => {
    const light = renderer({ defaults: { logoUrl: 'https://vality.kr/logo.png' } })
    const html = (await light.render('welcome', {}, { job })).html as string
    expect(html).toMatch(
      /<a class="logo-backing"[^>]*style="[^"]*background-color: #ffffff; background-image: linear-gradient\(#ffffff, #ffffff\)/,
    )
    expect(html).not.toContain('<img class="logo logo-dark"')
    const dark = renderer({
      defaults: { logoUrl: 'https://vality.kr/logo.png', logoUrlDark: 'https://vality.kr/logo-white.png' },
    })
    const both = (await dark.render('welcome', {}, { job })).html as string
    expect(both).toMatch(
      /<img class="logo logo-dark" src="https:\/\/vality\.kr\/logo-white\.png"[^>]*display: none; mso-hide: all/,
    )
    expect(both).toContain('[data-ogsc] .logo-dark')
    await Promise.all([light.close(), dark.close()])
  })

  test('logoUrlDark must be an http(s) URL', async () => {
    expect(() => renderer({ defaults: { logoUrlDark: 'javascript:alert(1)' } })).toThrow(/logoUrlDark/)
    await expect(
      templates.render('welcome', { logoUrl: 'https://v.kr/l.png', logoUrlDark: 'javascript:x' }, { job }),
    ).rejects.toMatchObject({ code: 'E_TEMPLATE', field: 'logoUrlDark' })
  })
})

describe('plain-text part', () => {
  test('a Markdown table is one line per row, cells joined by " | "; image alt texts are kept', async () => {
    const body = [
      '| 지표 | 3월 | 4월 |',
      '| --- | --- | --- |',
      '| 열람률 | 41.2% | 43.0% |',
      '| 클릭률 | 7.9% | [8.1%](https://vality.kr/stats) |',
      '',
      '![봄 배너](https://vality.kr/banner.png)',
      '',
      '<img src="https://vality.kr/spacer.gif" alt="">',
    ].join('\n')
    const { text } = await issue(body)
    expect(text).toContain('지표 | 3월 | 4월\n열람률 | 41.2% | 43.0%\n클릭률 | 7.9% | 8.1% [https://vality.kr/stats]')
    expect(text).toContain('봄 배너')
    expect(text).not.toContain('spacer.gif')
    expect(text).not.toContain('banner.png')
  })

  test("the layout's own tables are still read as blocks", async () => {
    const { text } = await templates.render('subscription-confirm', { confirmUrl: 'https://vality.kr/c' }, { job })
    expect(text).not.toContain(' | ')
  })
})

describe('subjects', () => {
  test('the English newsletter subject has the brand prefix the Korean one has', async () => {
    expect((await issue('Body', {}, 'en')).subject).toBe('[Vality] 3월호')
    expect((await issue('Body', {}, 'ko')).subject).toBe('[Vality] 3월호')
  })
})
