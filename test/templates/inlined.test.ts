import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import juice from 'juice'
import { expect, test } from 'vitest'
import { createTemplateRenderer } from '../../src/index.js'
import { inlineBuiltins } from '../../src/templates/builtin/generate.js'
import { BUILTIN_TEMPLATE_NAMES } from '../../src/templates/builtin/index.js'
import { INLINED_BUILTINS } from '../../src/templates/builtin/inlined.generated.js'
import { inlineCss } from '../../src/templates/inline-css.js'
import { createLayout } from '../../src/templates/layout.js'
import { root } from '../helpers/build.js'

test('the committed inlined.generated.ts is up to date (else: npm run generate:templates)', () => {
  expect(INLINED_BUILTINS).toEqual(inlineBuiltins(juice))
})

test('built-in templates inlined at build time are what juice gives at run time, in any theme', async () => {
  const themes = [{}, { brandColor: '#ABC', textColor: '#000000', backgroundColor: '#fff' }]
  for (const theme of themes) {
    const layout = createLayout({ defaults: theme })
    const { BUILTIN_TEMPLATES } = await import('../../src/templates/builtin/index.js')
    for (const name of BUILTIN_TEMPLATE_NAMES) {
      for (const locale of ['ko', 'en']) {
        const body = BUILTIN_TEMPLATES[name].locales?.[locale]?.html as string
        const atRunTime = inlineCss(juice, layout.wrap(body, { name, locale, builtin: true }), undefined)
        const { head, tail } = INLINED_BUILTINS.layouts[locale] as { head: string; tail: string }
        expect(layout.fillTheme(head + INLINED_BUILTINS.bodies[`${name}.${locale}`] + tail)).toBe(atRunTime)
      }
    }
  }
})

test('rendering a built-in template in a fresh process never loads juice; warmup() loads what it needs', async () => {
  const script = `
    import { createRequire } from 'node:module'
    import { createTemplateRenderer } from './src/index.ts'
    const loaded = () => Object.keys(createRequire(import.meta.url).cache ?? {}).some((path) => path.includes('/juice/'))
    const templates = createTemplateRenderer({ defaults: { brandName: 'V', frontendUrl: 'https://v.example' } })
    await templates.warmup()
    const started = performance.now()
    const rendered = await templates.render('verification-code', { code: '123456' }, { locale: 'ko' })
    const ms = performance.now() - started
    const before = loaded()
    await import('juice')
    console.log(JSON.stringify({ juice: before, seen: loaded(), ok: rendered.html.includes('123456'), ms }))`
  const { stdout } = await promisify(execFile)(
    join(root, 'node_modules/.bin/tsx'),
    ['--import', './scripts/lib/text-register.mjs', '--input-type=module', '-e', script],
    { cwd: root, timeout: 60_000 },
  )
  const result = JSON.parse(stdout.trim().split('\n').pop() as string)
  // `seen`: the check does see juice once it is loaded.
  expect(result).toMatchObject({ juice: false, seen: true, ok: true })
  expect(result.ms).toBeLessThan(5000)
})

test('a renderer with only the built-in templates needs the brand and the site when it is created', async () => {
  expect(() => createTemplateRenderer({})).toThrow(
    expect.objectContaining({ code: 'E_CONFIG', field: 'defaults.brandName' }),
  )
  expect(() => createTemplateRenderer({ defaults: { brandName: 'Vality' } })).toThrow(
    expect.objectContaining({ code: 'E_CONFIG', field: 'defaults.frontendUrl' }),
  )
  expect(() => createTemplateRenderer({ builtins: false })).not.toThrow()
  // With templates of its own, the built-ins are extras: a job's data may still bring the brand.
  const own = createTemplateRenderer({ templates: { note: { subject: 'Note', html: '<p>{{text}}</p>' } } })
  expect((await own.render('note', { text: 'hi' })).html).toMatch(/<p[^>]*>hi<\/p>/)
  await expect(own.render('verification-code', { code: '123456' })).rejects.toMatchObject({
    code: 'E_TEMPLATE',
    field: 'brandName',
    message: expect.stringContaining('set defaults.brandName in createTemplateRenderer'),
  })
  const withData = await own.render('verification-code', {
    code: '123456',
    brandName: 'Shop',
    frontendUrl: 'https://shop.example',
  })
  expect(withData.subject).toBe('123456 is your Shop verification code')
  await own.close()
})
