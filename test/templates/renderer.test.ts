import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compile } from 'html-to-text'
import { afterAll, describe, expect, test } from 'vitest'
import {
  BUILTIN_TEMPLATE_NAMES,
  createTemplateRenderer,
  MailstreamError,
  type TemplateRendererOptions,
  verifyUnsubscribeToken,
} from '../../src/index.js'
import { TEXT_FORMATTERS, TEXT_OPTIONS } from '../../src/templates/text.js'

const SECRET = 'test-secret-0123456789abcdef'
const HOSTILE_NAME = '<script>alert("x")</script>'

const renderer = (options: TemplateRendererOptions = {}) =>
  createTemplateRenderer({
    defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr', logoUrl: 'https://vality.kr/logo.png' },
    unsubscribe: { secret: SECRET, mailto: 'unsubscribe@vality.kr' },
    ...options,
  })

const job = (address = 'Reader@Example.com') => ({ id: 'job-1', type: 'newsletter', to: [{ address }] })

const DATA: Record<string, Record<string, unknown>> = {
  'verification-code': { code: '482913', name: HOSTILE_NAME },
  'subscription-confirm': { confirmUrl: 'https://vality.kr/confirm?token=abc&from=mail', name: HOSTILE_NAME },
  'subscription-cancel': { resubscribeUrl: 'https://vality.kr/subscribe', name: HOSTILE_NAME },
  welcome: { name: HOSTILE_NAME },
  'newsletter-issue': {
    title: '봄 소식 <b>3월호</b>',
    body: '## 이번 호\n\n**봄**이 왔습니다. [전체 보기](https://vality.kr/issues/3)',
    name: HOSTILE_NAME,
    openPixelUrl: 'https://vality.kr/o/abc.gif',
  },
  'consent-notice': {
    senderName: 'Vality',
    change: 'withdrawn',
    withdrawn: true,
    date: '2026년 12월 3일',
    name: HOSTILE_NAME,
  },
  'consent-reminder': {
    senderName: 'Vality',
    consentedDate: '2024년 12월 3일',
    keepUrl: 'https://vality.kr/consent?token=keep',
    withdrawUrl: 'https://vality.kr/consent?token=withdraw',
    name: HOSTILE_NAME,
  },
}

async function rejection(promise: Promise<unknown>): Promise<MailstreamError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(MailstreamError)
    return error as MailstreamError
  }
  throw new Error('expected a rejection')
}

describe('built-in templates', () => {
  const templates = renderer()

  test.each(BUILTIN_TEMPLATE_NAMES.flatMap((name) => ['ko', 'en'].map((locale) => [name, locale] as const)))(
    '%s renders in %s with escaping intact',
    async (name, locale) => {
      const rendered = await templates.render(name, DATA[name] as Record<string, unknown>, { locale, job: job() })
      expect(rendered.locale).toBe(locale)
      const html = rendered.html as string
      // A hostile name stays text: escaped in the HTML, literal in the plain-text part.
      expect(html).not.toContain('<script')
      expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;')
      expect(rendered.text).toContain(HOSTILE_NAME)
      expect(rendered.text).not.toMatch(/<(?:p|td|table|a)\b/)
      // CSS is inlined for mail clients; only the responsive media queries stay in <style>.
      expect(html).toMatch(/<td class="card"[^>]* style="[^"]*background-color: #ffffff/)
      expect(html).toMatch(/<style>\s*@media/)
      expect(html).toContain('Vality')
      expect(rendered.text).toContain(
        locale === 'ko' ? '이 메일은 Vality에서 보냈습니다.' : 'This email was sent by Vality.',
      )
      expect(html).toContain(`<html lang="${locale}">`)
      expect(rendered.subject).not.toMatch(/[\r\n]/)
    },
  )

  test('verification code: the code, its 10 minutes, the do-not-share notice, no List-Unsubscribe', async () => {
    const ko = await templates.render('verification-code', { code: '482913' }, { locale: 'ko', job: job() })
    expect(ko.subject).toBe('[Vality] 인증 코드 482913')
    expect(ko.text).toContain('482913')
    expect(ko.text).toContain('10분 동안')
    expect(ko.text).toContain('누구에게도 알려 주지 마세요')
    expect(ko.headers).toBeUndefined()
    expect(ko.html).not.toContain('unsubscribe')
    const en = await templates.render('verification-code', { code: '482913' }, { locale: 'en', job: job() })
    expect(en.text).toContain('10 minutes')
    expect(en.text).toContain('Never share this code')
  })

  test('newsletter issue: title, Markdown body, name, unsubscribe link and one-click headers, open pixel', async () => {
    const rendered = await templates.render('newsletter-issue', DATA['newsletter-issue'] as Record<string, unknown>, {
      locale: 'ko',
      job: job(),
    })
    const html = rendered.html as string
    expect(rendered.subject).toBe('[Vality] 봄 소식 <b>3월호</b>')
    expect(html).toContain('봄 소식 &lt;b&gt;3월호&lt;/b&gt;')
    expect(html).toMatch(/<h2 style="[^"]+">이번 호<\/h2>/)
    expect(html).toMatch(/<strong>봄<\/strong>/)
    expect(html).toContain('<img src="https://vality.kr/o/abc.gif" width="1" height="1"')
    const headers = rendered.headers as Record<string, string>
    expect(headers['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click')
    const match =
      /^<(https:\/\/vality\.kr\/unsubscribe\?token=([^>]+))>, <mailto:unsubscribe@vality\.kr\?subject=unsubscribe%20([^>]+)>$/.exec(
        headers['List-Unsubscribe'] as string,
      )
    expect(match).not.toBeNull()
    const [, url, token, mailToken] = match as unknown as [string, string, string, string]
    expect(mailToken).toBe(token)
    expect(html).toContain(`href="${url}"`)
    expect(rendered.text).toContain(url)
    expect(verifyUnsubscribeToken(decodeURIComponent(token), SECRET)).toEqual({
      ok: true,
      email: 'reader@example.com',
      list: 'default',
    })
  })

  test('List-Unsubscribe on newsletters and confirmations, not on verification codes or cancellations', async () => {
    const headersOf = async (name: string) =>
      (await templates.render(name, DATA[name] as Record<string, unknown>, { job: job() })).headers
    expect(await headersOf('newsletter-issue')).toHaveProperty('List-Unsubscribe')
    expect(await headersOf('subscription-confirm')).toHaveProperty(
      'List-Unsubscribe-Post',
      'List-Unsubscribe=One-Click',
    )
    expect(await headersOf('welcome')).toHaveProperty('List-Unsubscribe')
    expect(await headersOf('verification-code')).toBeUndefined()
    expect(await headersOf('subscription-cancel')).toBeUndefined()
  })

  test('a newsletter cannot go out without an unsubscribe link', async () => {
    const bare = createTemplateRenderer({ defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' } })
    const error = await rejection(bare.render('newsletter-issue', { title: 'T', body: 'B' }, { job: job() }))
    expect(error.code).toBe('E_TEMPLATE')
    expect(error.field).toBe('unsubscribeUrl')
    // A link the host makes itself is used as it is, with the headers.
    const own = await bare.render(
      'newsletter-issue',
      { title: 'T', body: 'B', unsubscribeUrl: 'https://vality.kr/u/123' },
      { job: job() },
    )
    expect(own.headers).toEqual({
      'List-Unsubscribe': '<https://vality.kr/u/123>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    })
  })

  test('a missing required variable is E_TEMPLATE naming it, not an empty string', async () => {
    const error = await rejection(templates.render('verification-code', {}, { job: job() }))
    expect(error.code).toBe('E_TEMPLATE')
    expect(error.field).toBe('code')
    expect(error.message).toContain("'code'")
    const noTitle = await rejection(templates.render('newsletter-issue', { body: 'x' }, { job: job() }))
    expect(noTitle.field).toBe('title')
  })

  test('URL variables must be http(s): a javascript: link is refused', async () => {
    for (const url of ['javascript:alert(1)', 'data:text/html,hi', 'https://ok.example/" onmouseover="x']) {
      const error = await rejection(templates.render('subscription-confirm', { confirmUrl: url }, { job: job() }))
      expect(error.code).toBe('E_TEMPLATE')
      expect(error.field).toBe('confirmUrl')
    }
  })

  test('locale falls back from ko-KR to ko, and from an unknown locale to the default', async () => {
    const ko = await templates.render('welcome', {}, { locale: 'ko-KR', job: job() })
    expect(ko.locale).toBe('ko')
    expect(ko.subject).toBe('Vality에 오신 것을 환영합니다')
    const fr = await templates.render('welcome', {}, { locale: 'fr', job: job() })
    expect(fr.locale).toBe('en')
    const korean = createTemplateRenderer({
      locale: 'ko',
      defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
    })
    expect((await korean.render('welcome', {})).locale).toBe('ko')
  })

  test('brand colours from defaults reach the inlined CSS', async () => {
    const branded = renderer({
      defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr', brandColor: '#ff5500' },
    })
    const rendered = await branded.render('subscription-confirm', DATA['subscription-confirm'] as never, { job: job() })
    expect(rendered.html).toMatch(/class="button-cell"[^>]*style="[^"]*background-color: #ff5500/)
    expect(rendered.html).toContain('>Vality</a>') // no logo: the brand name is the header
  })
})

describe('Markdown', () => {
  const templates = renderer()
  const hostile = [
    '# Hello',
    '',
    'Text <script>alert(1)</script> and <style>body { display: none }</style> **bold**',
    '',
    '[js](javascript:alert(1)) [JS](JaVaScRiPt:alert(1)) [data](data:text/html;base64,PHNjcmlwdD4=) [ok](https://ok.example/a)',
    '',
    '<img src="x" onerror="alert(1)"> <a href="https://ok.example/b" onclick="steal()">b</a>',
    '<img src="data:image/png;base64,AAAA"> <iframe src="https://evil.example"></iframe>',
    '<svg onload="alert(1)"></svg> <a href="&#106;avascript:alert(1)">entity</a> <div onmouseover="x()">div</div>',
    '<form action="https://evil.example"><input name="p"></form> <object data="x"></object>',
  ].join('\n')

  test('hostile input: no script or style tag, no on* attribute, no javascript: or data: URL survives', async () => {
    const rendered = await templates.render('newsletter-issue', { title: 'T', body: hostile }, { job: job() })
    const html = (rendered.html as string).toLowerCase()
    expect(html).not.toContain('<script')
    expect(html.match(/<style/g)).toHaveLength(1) // the layout's media queries, nothing from the body
    expect(html).not.toContain('display: none }')
    expect(html).not.toMatch(/\son[a-z]+\s*=/)
    expect(html).not.toContain('javascript:')
    expect(html).not.toContain('data:')
    expect(html).not.toMatch(/<iframe|<svg|<form|<input|<object/)
    // What is harmless survives.
    expect(html).toContain('<strong>bold</strong>')
    expect(html).toMatch(/<a href="https:\/\/ok\.example\/a"[^>]*>ok<\/a>/)
    expect(html).toMatch(/<a href="https:\/\/ok\.example\/b"[^>]*>b<\/a>/)
    expect(html).toMatch(/<h1 style="[^"]+">hello<\/h1>/)
  })

  test('the plain-text part is the text of the whole HTML, though the Markdown in it is converted only once', async () => {
    const pageText = compile({ ...TEXT_OPTIONS, formatters: TEXT_FORMATTERS })
    const bodies = [
      DATA['newsletter-issue']?.body as string,
      hostile,
      '# Title\n\npara one\n\n- a\n- b\n  - c\n\n> quote\n\n```js\nconst x = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |',
      `${'word '.repeat(60)}\n\n1. one\n2. two\n\n---\n\n### end [link](https://ok.example/x)`,
      'only <script>alert(1)</script>',
    ]
    for (const locale of ['ko', 'en']) {
      for (const body of bodies) {
        for (const name of [undefined, 'Kim']) {
          const data = { title: 'T', body, ...(name !== undefined && { name }) }
          const rendered = await templates.render('newsletter-issue', data, { locale, job: job() })
          expect(rendered.text).toBe(pageText(rendered.html as string).trim())
        }
      }
    }
  })

  test('Markdown text is not re-read as Mustache', async () => {
    const rendered = await templates.render(
      'newsletter-issue',
      { title: 'T', body: 'Hi {{brandName}} {{{x}}}' },
      { job: job() },
    )
    expect(rendered.html).toContain('Hi {{brandName}} {{{x}}}')
  })
})

describe('your own templates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailstream-templates-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  test('inline templates: locales, required variables, partials, CSS, text part, no layout', async () => {
    const templates = renderer({
      css: '.note { color: #123456; }',
      partials: { sign: '<p class="note">— {{brandName}}</p>' },
      templates: {
        receipt: {
          required: ['orderId'],
          subject: 'Receipt {{orderId}}',
          html: '<h1>Order {{orderId}}</h1>{{> sign}}',
          locales: { ko: { subject: '주문 {{orderId}} 영수증', html: '<h1>주문 {{orderId}}</h1>{{> sign}}' } },
        },
        plain: { subject: 'Hi {{name}}', text: 'Hello {{name}} & welcome', layout: false },
        page: { subject: 'Page', html: '<html><body><p class="note">{{name}}</p></body></html>', layout: false },
      },
    })
    const en = await templates.render('receipt', { orderId: 'A-1' })
    expect(en.subject).toBe('Receipt A-1')
    expect(en.html).toMatch(/<p class="note" style="[^"]*color: #123456;?">— Vality<\/p>/)
    expect(en.html).toContain('class="card"')
    expect((await templates.render('receipt', { orderId: 'A-1' }, { locale: 'ko' })).subject).toBe('주문 A-1 영수증')
    const error = await rejection(templates.render('receipt', {}))
    expect(error).toMatchObject({ code: 'E_TEMPLATE', field: 'orderId' })

    const plain = await templates.render('plain', { name: '<b>Kim</b>' })
    expect(plain).toMatchObject({ subject: 'Hi <b>Kim</b>', text: 'Hello <b>Kim</b> & welcome' })
    expect(plain.html).toBeUndefined()

    const page = await templates.render('page', { name: 'x' })
    expect(page.html).not.toContain('class="card"')
    expect(page.html).toContain('style="color: #123456;"')
  })

  test('a folder of templates: <name>.<locale>.html, <name>.json, and nothing outside the folder', async () => {
    mkdirSync(join(dir, 'mail'), { recursive: true })
    writeFileSync(join(dir, 'mail', 'notice.en.html'), '<p>Notice for {{name}}</p>')
    writeFileSync(join(dir, 'mail', 'notice.ko.html'), '<p>{{name}}님께 알림</p>')
    writeFileSync(
      join(dir, 'mail', 'notice.json'),
      JSON.stringify({ subject: { en: 'Notice', ko: '알림' }, required: ['name'] }),
    )
    writeFileSync(join(dir, 'secret.txt'), 'do not read')
    const templates = renderer({ dir })
    const ko = await templates.render('mail/notice', { name: '지민' }, { locale: 'ko' })
    expect(ko.subject).toBe('알림')
    expect(ko.text).toContain('지민님께 알림')
    expect((await templates.render('mail/notice', { name: 'Jimin' })).subject).toBe('Notice')
    expect(await rejection(templates.render('mail/notice', {}))).toMatchObject({ field: 'name' })
    expect(await rejection(templates.render('mail/../secret', {}))).toMatchObject({ code: 'E_TEMPLATE' })
    expect(await rejection(templates.render('missing', {}))).toMatchObject({ code: 'E_TEMPLATE', field: 'template' })
  })

  test('bad options are E_CONFIG naming the field', () => {
    const configError = (options: TemplateRendererOptions) => {
      try {
        createTemplateRenderer(options)
      } catch (error) {
        return error as MailstreamError
      }
      throw new Error('expected E_CONFIG')
    }
    expect(configError({ defaults: { brandColor: 'red; background: url(x)' } })).toMatchObject({
      code: 'E_CONFIG',
      field: 'defaults.brandColor',
    })
    expect(configError({ layout: '<p>no slot</p>' })).toMatchObject({ code: 'E_CONFIG', field: 'layout' })
    expect(configError({ unsubscribe: { secret: 'short' } })).toMatchObject({
      code: 'E_CONFIG',
      field: 'unsubscribe.secret',
    })
    expect(configError({ unsubscribe: { secret: SECRET } })).toMatchObject({
      code: 'E_CONFIG',
      field: 'unsubscribe.url',
    })
  })
})

test('links of the layout are checked on every template, verification codes included', async () => {
  const templates = renderer()
  for (const field of ['unsubscribeUrl', 'frontendUrl', 'logoUrl']) {
    const error = await rejection(
      templates.render('verification-code', { code: '1', [field]: 'javascript:alert(1)' }, { job: job() }),
    )
    expect(error).toMatchObject({ code: 'E_TEMPLATE', field })
  }
})
