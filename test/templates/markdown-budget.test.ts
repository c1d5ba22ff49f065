import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { afterAll, describe, expect, test } from 'vitest'
import { createTemplateRenderer, MailstreamError, type TemplateRendererOptions } from '../../src/index.js'
import { root } from '../helpers/build.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'

const BUDGET_MS = 1000
const options: TemplateRendererOptions = {
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
  unsubscribe: { secret: 'test-secret-0123456789abcdef' },
}
const renderers: { close(): Promise<void> }[] = []
afterAll(async () => {
  await Promise.all(renderers.map((renderer) => renderer.close()))
})
function renderer(extra: TemplateRendererOptions = {}) {
  const templates = createTemplateRenderer({ ...options, ...extra })
  renderers.push(templates)
  return templates
}
const job = (i = 0) => ({ id: `job-${i}`, type: 'newsletter', to: [{ address: `reader${i}@example.com` }] })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs `work` while the event loop's delay is sampled every 10 ms; the longest stall, in ms. */
async function stalls<T>(
  work: () => Promise<T>,
): Promise<{ maxDelayMs: number; elapsedMs: number; outcome: T | Error }> {
  const histogram = monitorEventLoopDelay({ resolution: 10 })
  histogram.enable()
  await sleep(30) // the first interval is not recorded: let sampling start before the work does
  const started = performance.now()
  let outcome: T | Error
  try {
    outcome = await work()
  } catch (error) {
    outcome = error as Error
  }
  const elapsedMs = performance.now() - started
  await sleep(30) // a stall at the very end is recorded by the next sample
  histogram.disable()
  return { maxDelayMs: histogram.max / 1e6, elapsedMs, outcome }
}

const hostile: [string, string, RegExp][] = [
  ["'_a' × 500,000 (1 MB): quadratic in marked", '_a'.repeat(500_000), /took longer than 1000 ms/],
  ["'*a' × 244,000 (488 kB)", '*a'.repeat(244_000), /took longer than 1000 ms/],
  ['146 kB of nested <table><tr><td>', '<table><tr><td>'.repeat(9733), /nests \d+ elements deep/],
  ["'>' × 3000 (3 kB)", '>'.repeat(3000), /nests (\d+ elements deep|too deep)/],
]

describe('hostile Markdown', () => {
  const templates = renderer({ renderTimeoutMs: BUDGET_MS })

  test.each(hostile)(
    '%s is E_TEMPLATE within the budget, and the event loop never stalls',
    async (_name, body, reason) => {
      await templates.render(
        'newsletter-issue',
        { title: 'warm', body: 'Compiles the template first.' },
        { job: job() },
      )
      const { maxDelayMs, elapsedMs, outcome } = await stalls(() =>
        templates.render('newsletter-issue', { title: 'Issue', body }, { job: job(1) }),
      )
      expect(outcome).toBeInstanceOf(MailstreamError)
      expect(outcome).toMatchObject({ code: 'E_TEMPLATE', field: 'body', message: expect.stringMatching(reason) })
      expect(maxDelayMs).toBeLessThan(100)
      expect(elapsedMs).toBeLessThan(BUDGET_MS + 10_000) // thread start included

      // Remembered for that text: the next recipient of the batch fails at once, not after the budget.
      const again = await stalls(() => templates.render('newsletter-issue', { title: 'Issue', body }, { job: job(2) }))
      expect(again.outcome).toMatchObject({ code: 'E_TEMPLATE', field: 'body' })
      expect(again.elapsedMs).toBeLessThan(BUDGET_MS)
    },
  )

  test('after a text over the budget, the next text renders in a fresh thread', async () => {
    await expect(
      templates.render('newsletter-issue', { title: 'T', body: '_a'.repeat(200_000) }, { job: job() }),
    ).rejects.toMatchObject({ code: 'E_TEMPLATE' })
    const rendered = await templates.render('newsletter-issue', { title: 'T', body: 'Still **fine**.' }, { job: job() })
    expect(rendered.html).toContain('<strong>fine</strong>')
  })
})

describe('big Markdown that is fine', () => {
  const templates = renderer()

  test.each([
    ["'*a' × 10,000 (20 kB)", '*a'.repeat(10_000), '<em>a'],
    [
      '800 kB of ordinary paragraphs',
      'A paragraph with **bold**, *em* and a [link](https://vality.kr/a).\n\n'.repeat(12_000),
      '<strong>bold</strong>',
    ],
  ])('%s renders for each recipient without stalling the event loop', async (_name, body, expected) => {
    await templates.render('newsletter-issue', { title: 'warm', body: 'Compiles the template first.' }, { job: job() })
    const { maxDelayMs, outcome } = await stalls(async () => {
      const results = []
      for (let i = 0; i < 5; i++) {
        results.push(
          await templates.render('newsletter-issue', { title: 'Issue', body, name: `R${i}` }, { job: job(i) }),
        )
        await sleep(1) // as the worker does between sends
      }
      return results
    })
    if (outcome instanceof Error) throw outcome
    expect(maxDelayMs).toBeLessThan(100)
    for (const [i, rendered] of outcome.entries()) {
      expect(rendered.html).toContain(expected)
      expect(rendered.html).toContain(`R${i}`)
      // The plain-text part has the Markdown's text, and the page's own text around it.
      expect(rendered.text).toContain(`R${i}`)
      expect(rendered.text).toContain(expected === '<em>a' ? 'aaaa' : 'A paragraph with bold, em and a link')
      expect(rendered.text).toContain('This email was sent by Vality.')
    }
  })
})

test('close() ends a render in progress with E_CLOSED, and the renderer renders again afterwards', async () => {
  const templates = renderer({ renderTimeoutMs: 60_000 })
  const failure = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (error: unknown) => error,
    )
  const slow = failure(templates.render('newsletter-issue', { title: 'T', body: '_a'.repeat(300_000) }, { job: job() }))
  await sleep(500)
  await templates.close()
  expect(await slow).toMatchObject({ code: 'E_CLOSED' })
  // Not remembered as a template failure: the text is rendered again when asked.
  const again = failure(
    templates.render('newsletter-issue', { title: 'T', body: '_a'.repeat(300_000) }, { job: job() }),
  )
  await sleep(200)
  await templates.close()
  expect(await again).toMatchObject({ code: 'E_CLOSED' })
  const rendered = await templates.render('newsletter-issue', { title: 'T', body: '# Back' }, { job: job() })
  expect(rendered.html).toMatch(/<h1 style="[^"]+">Back<\/h1>/)
})

test('renderTimeoutMs is validated', () => {
  for (const renderTimeoutMs of [0, -1, 1.5, Number.NaN, '5000' as unknown as number]) {
    expect(() => createTemplateRenderer({ renderTimeoutMs })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'renderTimeoutMs' }),
    )
  }
})

test('the render thread never keeps the process alive', async () => {
  const script = `
    import { createTemplateRenderer } from './src/index.ts'
    const templates = createTemplateRenderer({ defaults: { brandName: 'V', frontendUrl: 'https://v.example' } })
    const rendered = await templates.render('newsletter-issue', { title: 'T', body: '**hi**', unsubscribeUrl: 'https://v.example/u' })
    console.log(rendered.html.includes('<strong>hi</strong>'))`
  const started = Date.now()
  const { stdout } = await promisify(execFile)(
    join(root, 'node_modules/.bin/tsx'),
    ['--import', './scripts/lib/text-register.mjs', '--input-type=module', '-e', script],
    { cwd: root, timeout: 30_000 },
  )
  expect(stdout.trim()).toBe('true')
  // The thread ends by itself after 10 s idle; the process must not wait for that.
  expect(Date.now() - started).toBeLessThan(9000)
})

test('a newsletter batch with a hostile body: every job is dead-lettered as E_TEMPLATE, the budget paid once', async () => {
  const { queue, worker } = harness(connect())
  const templates = renderer({ renderTimeoutMs: BUDGET_MS })
  const total = 20
  const w = worker({ templates, concurrency: 4 })
  const dead: { id: string; error: string }[] = []
  w.on('dead', (event) => dead.push(event))
  const { maxDelayMs, elapsedMs } = await stalls(async () => {
    await queue.enqueueBatch(
      'hostile-issue',
      Array.from({ length: total }, (_, i) => ({ email: `reader${i}@example.com` })),
      (reader) => ({ to: reader.email }),
      { template: 'newsletter-issue', data: { title: 'Issue', body: '_a'.repeat(500_000) } },
    )
    await w.start()
    while (dead.length < total) await sleep(20)
  })
  expect(dead).toHaveLength(total)
  for (const event of dead) expect(event.error).toMatch(/E_TEMPLATE|took longer than 1000 ms/)
  expect(maxDelayMs).toBeLessThan(100)
  // 20 recipients × 1 s if each paid the budget; once, it is about 1 s.
  expect(elapsedMs).toBeLessThan(total * BUDGET_MS * 0.4)
})
