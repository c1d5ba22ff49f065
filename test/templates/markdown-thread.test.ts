import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { expect, test } from 'vitest'
import { createMarkdownRenderer } from '../../src/templates/markdown.js'
import { root } from '../helpers/build.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

test('an idle render thread ends, and the next Markdown starts a new one', async () => {
  const markdown = createMarkdownRenderer({ css: '', timeoutMs: 5000, idleMs: 50 })
  try {
    expect((await markdown.render('**one**')).html).toContain('<strong>one</strong>')
    await sleep(300)
    expect((await markdown.render('**two**')).html).toContain('<strong>two</strong>')
    expect(markdown.started).toBe(2)
  } finally {
    await markdown.close()
  }
})

test('a warmed render thread is kept while idle: every issue after warm() uses it', async () => {
  const markdown = createMarkdownRenderer({ css: '', timeoutMs: 5000, idleMs: 50 })
  try {
    await markdown.warm()
    expect(markdown.started).toBe(1)
    await sleep(300)
    expect((await markdown.render('**one**')).html).toContain('<strong>one</strong>')
    await sleep(300)
    expect((await markdown.render('**two**')).html).toContain('<strong>two</strong>')
    expect(markdown.started).toBe(1)
  } finally {
    await markdown.close()
  }
})

test('a renderer warmed up keeps its thread, and the host process still exits by itself', async () => {
  const script = `
    import { createTemplateRenderer } from './src/index.ts'
    const templates = createTemplateRenderer({ defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' }, unsubscribe: { secret: 'test-secret-0123456789abcdef' } })
    await templates.warmup()
    const rendered = await templates.render('newsletter-issue', { title: 'Issue', body: '**hi**', name: 'Kim', email: 'kim@example.com' })
    console.log(rendered.html.includes('<strong>hi</strong>'))`
  const { stdout } = await promisify(execFile)(
    `${root}/node_modules/.bin/tsx`,
    ['--import', './scripts/lib/text-register.mjs', '--input-type=module', '-e', script],
    { cwd: root, timeout: 30_000 },
  )
  // Ended by itself (the kept thread never holds the process): execFile would time out otherwise.
  expect(stdout.trim()).toBe('true')
})
