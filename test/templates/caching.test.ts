import { expect, test, vi } from 'vitest'
import { createTemplateRenderer } from '../../src/index.js'

// Count the expensive steps: Markdown (marked + sanitize) and CSS inlining (juice).
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
    renderMarkdown: (markdown: string, css: string) => {
      counts.markdown++
      return original.renderMarkdown(markdown, css)
    },
  }
})

test('Markdown is rendered once per issue and CSS inlined once per template, not per recipient', async () => {
  const templates = createTemplateRenderer({
    defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
    unsubscribe: { secret: 'test-secret-0123456789abcdef' },
  })
  const issue = { title: 'Issue 7', body: '## News\n\nSomething **new**.' }
  const names = new Set<string>()
  for (let i = 0; i < 200; i++) {
    const rendered = await templates.render(
      'newsletter-issue',
      { ...issue, name: `Reader ${i}` },
      { locale: 'ko', job: { id: `j${i}`, type: 'newsletter', to: [{ address: `reader${i}@example.com` }] } },
    )
    expect(rendered.html).toContain(`Reader ${i}님, 안녕하세요.`)
    names.add(rendered.headers?.['List-Unsubscribe'] as string)
  }
  expect(names.size).toBe(200) // each recipient has its own signed link
  expect(counts.markdown).toBe(1)
  // One juice call for the template, one for the issue's Markdown.
  expect(counts.juice).toBe(2)

  const issue8 = { title: 'Issue 8', body: 'Another *issue*', email: 'preview@example.com' }
  await templates.render('newsletter-issue', issue8, { locale: 'ko' })
  expect(counts.markdown).toBe(2)
  expect(counts.juice).toBe(3) // the new issue's Markdown; the template stays compiled
  await templates.render('newsletter-issue', issue8, { locale: 'en' })
  expect(counts.juice).toBe(4) // the English template, compiled once
  await templates.render('newsletter-issue', issue8, { locale: 'en' })
  expect(counts).toEqual({ juice: 4, markdown: 2 })
})
