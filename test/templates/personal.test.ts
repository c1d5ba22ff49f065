import { afterAll, expect, test, vi } from 'vitest'
import { createTemplateRenderer, type TemplateRendererOptions, verifyUnsubscribeToken } from '../../src/index.js'
import { BUILTIN_TEMPLATE_NAMES } from '../../src/templates/builtin/index.js'

// Counts page conversions to plain text (html-to-text), the largest cost of a whole render.
const counts = vi.hoisted(() => ({ conversions: 0 }))
vi.mock('html-to-text', async (importOriginal) => {
  const original = (await importOriginal()) as typeof import('html-to-text')
  return {
    ...original,
    compile: (...args: Parameters<typeof original.compile>) => {
      const convert = original.compile(...args)
      return (...input: Parameters<typeof convert>) => {
        counts.conversions++
        return convert(...input)
      }
    },
  }
})

const options: TemplateRendererOptions = {
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr', logoUrl: 'https://vality.kr/logo.png' },
  unsubscribe: { secret: 'test-secret-0123456789abcdef' },
}
const renderers: { close(): Promise<void> }[] = []
const renderer = (extra: TemplateRendererOptions = {}) => {
  const templates = createTemplateRenderer({ ...options, ...extra })
  renderers.push(templates)
  return templates
}
afterAll(() => Promise.all(renderers.map((templates) => templates.close())))

const HOSTILE_NAMES = [
  'Kim',
  '<script>alert(1)</script>',
  `"quoted" and 'single'`,
  '{{brandName}} {{{body}}}',
  '&amp; &lt;b&gt; & <b>',
  '김민준',
  'مرحبا بالعالم',
  '\u202eevil\u202c name',
  '👩‍💻 Dev 🎉',
  '  spaced \t out\n name  ',
  `A very long name that goes on and on ${'and on '.repeat(20)}until the line wraps twice`,
  '한국어'.repeat(40),
  'x'.repeat(130),
  // Around the wrap width of the greeting's paragraph ('Hi ' + name + ','), in one word and in several.
  'w'.repeat(95),
  'w'.repeat(96),
  'w'.repeat(97),
  `${'word '.repeat(19)}end`,
  `${'word '.repeat(19)}ends`,
  `${'word '.repeat(19)}endsx`,
  'two  spaces',
  ' leading',
  'trailing ',
  'tab\there',
  'line\nbreak',
  'zero\u200bwidth',
  'no\u00a0break space',
  'wide\u3000space',
  '0',
  7,
  '',
  '   ',
  undefined,
]

/** Data every recipient of a batch shares, for each built-in template. */
const SHARED: Record<(typeof BUILTIN_TEMPLATE_NAMES)[number], Record<string, unknown>> = {
  'verification-code': { code: '482913' },
  'subscription-confirm': { confirmUrl: 'https://vality.kr/confirm?t=abc' },
  'subscription-cancel': { resubscribeUrl: 'https://vality.kr/subscribe' },
  welcome: { ctaUrl: 'https://vality.kr/start' },
  'newsletter-issue': {
    title: 'Three small habits',
    issueUrl: 'https://vality.kr/issues/12',
    openPixelUrl: 'https://vality.kr/o.gif',
    body: [
      '## Hello!',
      '',
      'This week: **small habits** and why they compound, with a paragraph long enough that it wraps in the plain-text part at least once or twice.',
      '',
      '1. A ten-minute walk',
      '2. One page a day',
      '',
      '> A quote, also quite long, so that it has to wrap over more than one line of the text part, indented.',
      '',
      '| a | b |',
      '| - | - |',
      '| 1 | 2 |',
      '',
      '[Read the whole issue](https://vality.kr/issues/12)',
    ].join('\n'),
  },
  'consent-notice': { senderName: 'Vality', change: 'consented', consented: true, date: '2026-12-03' },
  'consent-reminder': {
    senderName: 'Vality',
    consentedDate: '2024-12-03',
    keepUrl: 'https://vality.kr/consent?t=keep',
    withdrawUrl: 'https://vality.kr/consent?t=withdraw',
  },
}

/**
 * A render as compared: signed unsubscribe tokens are encrypted with a random IV, so two renders
 * for one recipient differ there whichever path they take (same length: same wrapping).
 */
const comparable = (rendered: object, label: Record<string, unknown>) =>
  JSON.parse(JSON.stringify({ ...label, ...rendered }).replace(/token=[\w-]+/g, (token) => `token=${token.length}`))

const job = (i: number, batchId?: string) => ({
  id: `job-${i}`,
  type: 'newsletter',
  to: [{ address: `reader${i}@example.com` }],
  ...(batchId !== undefined && { batchId }),
})

test('a batch render is the same, byte for byte, as a whole render: every built-in template and locale, hostile names', async () => {
  const whole = renderer()
  const personal = renderer()
  const conversions: Record<string, number> = {}
  for (const name of BUILTIN_TEMPLATE_NAMES) {
    for (const locale of ['ko', 'en']) {
      const shared = { ...SHARED[name] }
      for (const [i, recipientName] of HOSTILE_NAMES.entries()) {
        const own = { name: recipientName, email: `reader${i}@example.com` }
        const data = { ...shared, ...own }
        const context = { locale, job: job(i, 'b1') }
        const expected = await whole.render(name, data, context)
        const before = counts.conversions
        const actual = await personal.render(name, data, { ...context, shared })
        const key = `${name}.${locale}`
        conversions[key] = (conversions[key] ?? 0) + counts.conversions - before
        const label = { name, locale, recipientName }
        expect(comparable(actual, label)).toEqual(comparable(expected, label))
        expect(Object.keys(actual)).toEqual(Object.keys(expected))
      }
    }
  }
  // Three kinds of name (a text, empty, absent), a skeleton each of three conversions (the page, its
  // lines, the check against a whole render); no recipient needed a whole render of their own.
  for (const count of Object.values(conversions)) expect(count).toBe(9)
})

test('a newsletter batch converts its page to text once per issue, not per recipient, and the text follows each name', async () => {
  const templates = renderer()
  const whole = renderer()
  const shared = { ...SHARED['newsletter-issue'] }
  const render = (i: number, name: unknown) =>
    templates.render('newsletter-issue', { ...shared, name }, { locale: 'ko', job: job(i, 'b2'), shared })
  await render(0, 'First')
  const before = counts.conversions
  const texts = new Set<string>()
  for (let i = 1; i <= 100; i++) {
    const rendered = await render(i, `Reader ${'x'.repeat(i)}`)
    texts.add(rendered.text)
    if (i % 25 === 0) {
      const expected = await whole.render(
        'newsletter-issue',
        { ...shared, name: `Reader ${'x'.repeat(i)}` },
        { locale: 'ko', job: job(i, 'b2') },
      )
      expect(comparable(rendered, {})).toEqual(comparable(expected, {}))
    }
  }
  // Only the four whole renders above converted a page; the long names rewrap their paragraphs.
  expect(counts.conversions - before).toBe(4)
  expect(texts.size).toBe(100)
  // A second issue is a new skeleton: three conversions (the page, its lines and the check), then none.
  const next = { ...shared, title: 'Issue 13' }
  const start = counts.conversions
  for (let i = 0; i < 20; i++) {
    await templates.render('newsletter-issue', { ...next, name: `R${i}` }, { job: job(i, 'b3'), shared: next })
  }
  expect(counts.conversions - start).toBe(3)
})

test('per-recipient data outside plain slots, or a value that would read differently, is rendered whole', async () => {
  const templates = {
    // A section that reads the value itself, a raw slot, an attribute, a link's text, CSS.
    length: { subject: 'S', html: '<p>{{#name}}{{length}} letters{{/name}}</p>' },
    raw: { subject: 'S', html: '<p>{{{name}}}</p>' },
    attribute: { subject: 'S', html: '<p title="{{name}}">Hi</p>' },
    linkText: { subject: 'S', html: '<p><a href="https://x.example/">{{name}}</a></p>' },
    styled: { subject: 'S', html: '<p style="color: {{name}}">Hi</p>' },
    list: { subject: 'S', html: '<ul><li>{{name}} {{intro}}</li></ul>' },
    quote: { subject: 'S', html: '<blockquote>{{name}} {{intro}}</blockquote>' },
    pre: { subject: 'S', html: '<pre>{{name}}</pre>' },
    url: { subject: 'S', html: '<p><a href="{{name}}">link</a> and <a href="{{home}}">https://home.example/</a></p>' },
    alone: { subject: 'S', html: '<p>{{name}}</p><p>{{intro}}</p>' },
    dotted: { subject: 'S', html: '<p>{{name.length}} {{name}}</p>' },
    partial: { subject: 'S', html: '<p>{{> missing}} {{name}}</p>' },
    // Plain slots in a long paragraph, the first one inside a word: it is wrapped around each value.
    wrapped: {
      subject: 'S',
      html: `<p>${'a'.repeat(49)} ${'b'.repeat(50)} ${'lead '.repeat(23)}[{{name}}] and {{name}} again ${'tail '.repeat(25)}</p><p>${'x'.repeat(99)} {{name}}</p>`,
    },
  }
  const whole = renderer({ templates })
  const personal = renderer({ templates })
  const shared = {
    intro: `An introduction that is long enough to wrap ${'again '.repeat(20)}`,
    home: 'https://home.example/',
  }
  const values = [
    ...HOSTILE_NAMES,
    'https://home.example/',
    'https://x.example/a b',
    'mailto:a@example.com',
    { a: 1 },
    true,
  ]
  for (const name of Object.keys(templates)) {
    for (const [i, value] of values.entries()) {
      const data = { ...shared, name: value }
      const expected = await whole.render(name, data, { job: job(i) })
      const actual = await personal.render(name, data, { job: job(i, 'b4'), shared })
      expect(comparable(actual, { name, value })).toEqual(comparable(expected, { name, value }))
    }
  }
})

test('a template that marks its recipient data gets the same page without a batch', async () => {
  const html = `<h1>{{title}}</h1><p>{{#name}}Dear {{name}},{{/name}}{{^name}}Hello,{{/name}} ${'words '.repeat(30)}</p><p>Your code: <strong>{{code}}</strong></p>`
  const whole = renderer({ templates: { note: { subject: '{{title}} for {{name}}', html } } })
  const marked = renderer({
    templates: { note: { subject: '{{title}} for {{name}}', html, recipientData: ['name', 'code'] } },
  })
  const start = counts.conversions
  for (const [i, name] of HOSTILE_NAMES.entries()) {
    const data = { title: 'Note', name, code: `${100000 + i}`, email: `r${i}@example.com` }
    const expected = await whole.render('note', data, { job: job(i) })
    expect(comparable(await marked.render('note', data, { job: job(i) }), {})).toEqual(comparable(expected, {}))
  }
  // One whole render per recipient for the reference; the marked template converts a skeleton per
  // kind of name (present or absent, empty, a number...), not per recipient.
  expect(counts.conversions - start).toBeLessThan(HOSTILE_NAMES.length + 3 * 6)
})

test('recipientData is validated', () => {
  expect(() => createTemplateRenderer({ templates: { note: { html: '<p>hi</p>', recipientData: ['a.b'] } } })).toThrow(
    expect.objectContaining({ code: 'E_CONFIG' }),
  )
})

test('a subject shared by a batch is the one a whole render gives, batch after batch and name after name', async () => {
  const templates = {
    shared: { subject: '[{{brandName}}] {{title}}', html: '<p>Hi {{name}}</p>' },
    own: { subject: '{{title}} for {{name}}', html: '<p>Hi {{name}}</p>' },
    section: { subject: '{{#vip}}VIP: {{/vip}}{{title}}', html: '<p>Hi {{name}}</p>' },
    lambda: { subject: '{{title}} {{stamp}}', html: '<p>Hi {{name}}</p>' },
  }
  const whole = renderer({ templates })
  const personal = renderer({ templates })
  const batches = [{ title: 'Issue 1' }, { title: 'Issue 2' }, { title: 7 }, { title: '' }, {}]
  let calls = 0
  for (const round of [0, 1]) {
    for (const [b, shared] of batches.entries()) {
      for (const name of Object.keys(templates)) {
        for (const [i, recipient] of ['Kim', '', 'Lee', undefined].entries()) {
          const own: Record<string, unknown> = { name: recipient, vip: i % 2 === 0 }
          if (name === 'lambda') own.stamp = () => `#${++calls}`
          const data = { ...shared, ...own }
          const context = { job: job(i, `s${b}`) }
          const expected = await whole.render(name, data, context)
          const actual = await personal.render(name, data, { ...context, shared })
          const label = { round, b, name, recipient }
          if (name === 'lambda') {
            expect({ ...label, subject: actual.subject }).toEqual({
              ...label,
              subject: `${shared.title ?? ''} #${calls}`.trim(),
            })
            continue
          }
          expect(comparable(actual, label)).toEqual(comparable(expected, label))
        }
      }
    }
  }
})

test('a URL found safe once does not let another through', async () => {
  const templates = renderer()
  const shared = { ...SHARED['newsletter-issue'] }
  const render = (issueUrl: string, i: number) =>
    templates.render(
      'newsletter-issue',
      { ...shared, issueUrl, name: `R${i}` },
      { job: job(i, 'b5'), shared: { ...shared, issueUrl } },
    )
  await expect(render('https://vality.kr/issues/12', 0)).resolves.toMatchObject({ subject: expect.any(String) })
  await expect(render('javascript:alert(1)', 1)).rejects.toMatchObject({ code: 'E_TEMPLATE', field: 'issueUrl' })
  await expect(render('https://vality.kr/issues/12', 2)).resolves.toMatchObject({ subject: expect.any(String) })
  await expect(render('https://vality.kr/a"b', 3)).rejects.toMatchObject({ code: 'E_TEMPLATE', field: 'issueUrl' })
})

test('signed links on a page with a query of its own, and on one without, verify and match the headers', async () => {
  for (const url of ['https://vality.kr/unsubscribe', 'https://vality.kr/u?list=weekly#top', 'http://vality.kr/u']) {
    const templates = renderer({ unsubscribe: { secret: 'test-secret-0123456789abcdef', url } })
    const shared = { ...SHARED['newsletter-issue'] }
    for (let i = 0; i < 3; i++) {
      const rendered = await templates.render(
        'newsletter-issue',
        { ...shared, name: `R${i}` },
        { job: job(i, 'b6'), shared },
      )
      const link = /<(.+)>/.exec(rendered.headers?.['List-Unsubscribe'] ?? '')?.[1] as string
      const parsed = new URL(link)
      expect(`${parsed.origin}${parsed.pathname}`).toBe(url.replace(/[?#].*$/, ''))
      expect(parsed.searchParams.get('list')).toBe(url.includes('list=') ? 'weekly' : null)
      expect(verifyUnsubscribeToken(parsed.searchParams.get('token'), 'test-secret-0123456789abcdef')).toMatchObject({
        ok: true,
        email: `reader${i}@example.com`,
      })
      expect(rendered.html).toContain(`href="${link.replaceAll('&', '&amp;')}"`)
      expect('List-Unsubscribe-Post' in (rendered.headers ?? {})).toBe(url.startsWith('https:'))
    }
  }
})
