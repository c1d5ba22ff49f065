import { expect, test, vi } from 'vitest'
import { createTemplateRenderer } from '../../src/index.js'

// Count the expensive steps: Markdown (marked, sanitize and juice, in the render thread) and the
// CSS inlining of templates (juice, on the main thread).
const counts = vi.hoisted(() => ({ juice: 0, markdown: 0 }))
vi.mock('juice', async (importOriginal) => {
  const juice = ((await importOriginal()) as { default: (...args: unknown[]) => string }).default
  return {
    default: (...args: unknown[]) => {
      counts.juice++
      return juice(...args)
    },
  }
})
vi.mock('../../src/templates/markdown.js', async (importOriginal) => {
  const original = (await importOriginal()) as typeof import('../../src/templates/markdown.js')
  return {
    ...original,
    createMarkdownRenderer: (options: Parameters<typeof original.createMarkdownRenderer>[0]) => {
      const renderer = original.createMarkdownRenderer(options)
      return {
        ...renderer,
        render: (markdown: string) => {
          counts.markdown++
          return renderer.render(markdown)
        },
      }
    },
  }
})

const renderer = () =>
  createTemplateRenderer({
    defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
    unsubscribe: { secret: 'test-secret-0123456789abcdef' },
  })
const reader = (i: number) => ({ id: `j${i}`, type: 'newsletter', to: [{ address: `reader${i}@example.com` }] })

test('Markdown is rendered once per issue and CSS inlined once per template, not per recipient', async () => {
  counts.juice = counts.markdown = 0
  const templates = renderer()
  const issue = { title: 'Issue 7', body: '## News\n\nSomething **new**.' }
  const names = new Set<string>()
  for (let i = 0; i < 200; i++) {
    const rendered = await templates.render(
      'newsletter-issue',
      { ...issue, name: `Reader ${i}` },
      { locale: 'ko', job: reader(i) },
    )
    expect(rendered.html).toContain(`Reader ${i}님, 안녕하세요.`)
    expect(rendered.text).toContain('Something new.')
    names.add(rendered.headers?.['List-Unsubscribe'] as string)
  }
  expect(names.size).toBe(200) // each recipient has its own signed link
  expect(counts.markdown).toBe(1)
  // No juice on this thread: the built-in template was inlined at build time, the issue's Markdown
  // is inlined in the render thread.
  expect(counts.juice).toBe(0)

  const issue8 = { title: 'Issue 8', body: 'Another *issue*', email: 'preview@example.com' }
  await templates.render('newsletter-issue', issue8, { locale: 'ko' })
  expect(counts).toEqual({ juice: 0, markdown: 2 }) // the new issue's Markdown; the template stays compiled
  await templates.render('newsletter-issue', issue8, { locale: 'en' })
  await templates.render('newsletter-issue', issue8, { locale: 'en' })
  expect(counts).toEqual({ juice: 0, markdown: 2 })
  await templates.close()
})

test("a template with CSS of its own is inlined once per template and locale, the built-ins with the renderer's css too", async () => {
  counts.juice = counts.markdown = 0
  const templates = createTemplateRenderer({
    defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
    templates: { note: { subject: 'Note', html: '<p class="note">{{text}}</p>' } },
    css: '.note { color: #123456; }',
  })
  for (let i = 0; i < 20; i++) {
    const rendered = await templates.render('note', { text: `Note ${i}` })
    expect(rendered.html).toMatch(/<p class="note" style="[^"]*color: #123456;[^"]*">Note \d+<\/p>/)
  }
  expect(counts.juice).toBe(1)
  for (let i = 0; i < 20; i++) await templates.render('verification-code', { code: `${100000 + i}` })
  expect(counts.juice).toBe(2) // extra CSS is inlined into the built-ins as well, once
  await templates.close()
})

test('a body that cannot be rendered is tried once per issue, not once per recipient', async () => {
  counts.juice = counts.markdown = 0
  const templates = renderer()
  const issue = { title: 'Hostile', body: '>'.repeat(3000) }
  const failures = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      templates.render('newsletter-issue', { ...issue, name: `Reader ${i}` }, { job: reader(i) }).then(
        () => undefined,
        (error: unknown) => error,
      ),
    ),
  )
  for (const error of failures) expect(error).toMatchObject({ code: 'E_TEMPLATE', field: 'body' })
  // Recipients who come later (the next chunk of the batch) get the remembered failure too.
  await expect(templates.render('newsletter-issue', issue, { job: reader(50) })).rejects.toMatchObject({
    code: 'E_TEMPLATE',
  })
  expect(counts.markdown).toBe(1)
  await templates.close()
})
