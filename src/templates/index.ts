import Mustache from 'mustache'
import { MailstreamError } from '../errors.js'
import { TEMPLATE_NAME_RE } from '../job.js'
import { parseOptions } from '../options.js'
import { BUILTIN_DEFAULTS, BUILTIN_TEMPLATE_NAMES } from './builtin/index.js'
import {
  type CompiledTemplate,
  createMarkdownCache,
  createTemplateCompiler,
  loadEngines,
  loadJuice,
} from './compile.js'
import { templateError } from './errors.js'
import { createLayout } from './layout.js'
import { createMarkdownRenderer } from './markdown.js'
import { optionsSchema, type RendererConfig } from './options.js'
import { createPersonalRenderer, type RecipientSplit } from './personal.js'
import { checkView, renderCompiled, renderMarkdownFields, renderSubject } from './render.js'
import { createTemplateSources } from './sources.js'
import type {
  RenderedTemplate,
  TemplateDefinition,
  TemplateRenderContext,
  TemplateRenderer,
  TemplateRendererOptions,
} from './types.js'
import { createUnsubscribeLinks } from './unsubscribe-links.js'

export type {
  RenderedTemplate,
  TemplateDefaults,
  TemplateDefinition,
  TemplateRenderContext,
  TemplateRenderer,
  TemplateRendererOptions,
  TemplateSource,
  UnsubscribeOptions,
} from './types.js'

/**
 * A renderer that offers nothing but the built-in templates needs what every one of them shows:
 * without it, each email would be dead at send time. With templates of its own, the built-ins are
 * extras and a job's data may still bring these (their render names what is missing).
 */
function checkBuiltinDefaults(config: RendererConfig): void {
  if (!config.builtins || config.templates !== undefined || config.dir !== undefined) return
  for (const field of BUILTIN_DEFAULTS) {
    if (config.defaults?.[field] !== undefined) continue
    throw new MailstreamError(
      'E_CONFIG',
      `createTemplateRenderer: defaults.${field}: the built-in templates need it (${field === 'brandName' ? "the brand in their subjects and footers, like 'Vality'" : 'the site their header and footer link to'}); set it, or give templates of your own`,
      { field: `defaults.${field}` },
    )
  }
}

/** What a template's subject reads (undefined unless only plain `{{x}}` tags), and its last render. */
interface SubjectMemo {
  names: string[] | undefined
  last: { values: unknown[]; subject: string } | undefined
}

const isPrimitive = (value: unknown) => value === null || (typeof value !== 'object' && typeof value !== 'function')

/** The names of a template's tags when it has only text and `{{x}}`/`{{{x}}}` tags of top-level names. */
function plainNames(source: string): string[] | undefined {
  let tokens: [string, string][]
  try {
    tokens = Mustache.parse(source) as unknown as [string, string][]
  } catch {
    return undefined // the render says what is wrong
  }
  const names = new Set<string>()
  for (const [type, name] of tokens) {
    if (type === 'text' || type === '!') continue
    if ((type !== 'name' && type !== '&') || name === '.' || name.includes('.')) return undefined
    names.add(name)
  }
  return [...names]
}

/**
 * The subject alone, with the same errors as a whole render. A subject that reads only texts,
 * numbers and the like is a function of them: the recipients of a batch, who share them, share it.
 */
function subjectOfWith(partials: Record<string, string>) {
  const memos = new WeakMap<CompiledTemplate, SubjectMemo>()
  return (template: CompiledTemplate, view: Record<string, unknown>) => {
    let memo = memos.get(template)
    if (!memo) {
      memo = { names: plainNames(template.subject), last: undefined }
      memos.set(template, memo)
    }
    const { names, last } = memo
    let values: unknown[] | undefined
    if (names) {
      values = names.map((name) => view[name])
      if (last && values.every((value, i) => value === last.values[i])) return last.subject
    }
    let subject: string
    try {
      subject = renderSubject(template, view, partials)
    } catch (cause) {
      throw templateError(template.name, `cannot render: ${(cause as Error).message}`, 'template', cause)
    }
    if (values?.every(isPrimitive)) memo.last = { values, subject }
    return subject
  }
}

/**
 * Renders named templates: Mustache (HTML-escaped), in a responsive layout, CSS inlined once per
 * template and locale, a plain-text part derived from the HTML, Markdown rendered and sanitised
 * once per distinct text, and signed unsubscribe links with RFC 8058 one-click headers.
 */
export function createTemplateRenderer(options: TemplateRendererOptions = {}): TemplateRenderer {
  const config = parseOptions(optionsSchema, options, 'createTemplateRenderer')
  const defaults: Record<string, unknown> = { ...config.defaults }
  const partials = config.partials ?? {}
  const layout = createLayout({ layout: config.layout, defaults: config.defaults, css: config.css })
  const links = createUnsubscribeLinks(config.unsubscribe, config.defaults?.frontendUrl)
  checkBuiltinDefaults(config)
  const markdown = createMarkdownRenderer({ css: layout.markdownCss, timeoutMs: config.renderTimeoutMs })
  const markdownCache = createMarkdownCache(markdown)
  const sources = createTemplateSources({
    templates: config.templates as Record<string, TemplateDefinition> | undefined,
    dir: config.dir,
    builtins: config.builtins,
    locale: config.locale,
  })
  const compiler = createTemplateCompiler({ sources, layout, markdown, partials, css: config.css })
  const subjectOf = subjectOfWith(partials)
  const personal = createPersonalRenderer({ partials, markdown: markdownCache, engines: loadEngines })

  /**
   * The recipient's own variables and a key for the rest: a batch's shared data says which is which
   * (what the job's data changes is the recipient's), else the template's `recipientData`.
   */
  // Per template, the data a batch's recipients share: its own, the defaults and the batch's, merged once.
  const sharedViews = new WeakMap<CompiledTemplate, { shared: object; base: Record<string, unknown> }>()

  function sharedView(template: CompiledTemplate, shared: object): Record<string, unknown> {
    let found = sharedViews.get(template)
    if (found?.shared !== shared) {
      found = { shared, base: { ...template.data, ...defaults, ...shared } }
      sharedViews.set(template, found)
    }
    return found.base
  }

  function recipientSplit(
    template: CompiledTemplate,
    view: Record<string, unknown>,
    context: TemplateRenderContext,
  ): RecipientSplit | undefined {
    const keys = new Set(template.recipientData)
    const { shared } = context
    if (shared && typeof shared === 'object') {
      // Whatever differs from the shared data is the recipient's: their data, their signed link.
      const base = sharedView(template, shared)
      for (const key of Object.keys(view)) if (!Object.hasOwn(base, key) || view[key] !== base[key]) keys.add(key)
      return { keys, sharedKey: personal.sharedKeyOf(shared) }
    }
    if (template.recipientData.length === 0) return undefined
    if (template.unsubscribe) keys.add('unsubscribeUrl')
    const sharedKey = personal.viewKeyOf(template, view, keys)
    return sharedKey === undefined ? undefined : { keys, sharedKey }
  }

  /** The compiled template and the view it renders, or `E_TEMPLATE` naming what is wrong. */
  async function prepare(name: unknown, data: unknown, locale: string | undefined) {
    if (typeof name !== 'string' || !TEMPLATE_NAME_RE.test(name)) {
      throw new MailstreamError('E_TEMPLATE', `template: '${String(name)}' is not a template name`, {
        field: 'template',
      })
    }
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw templateError(name, 'data must be an object', 'data')
    }
    const template = await compiler.compiledFor(name, locale)
    const view: Record<string, unknown> = { ...template.data, ...defaults, ...data }
    return { template, view }
  }

  const renderer: TemplateRenderer = {
    async render(name, data = {}, context = {}) {
      const { template, view } = await prepare(name, data, context.locale)
      const headers = template.unsubscribe ? links.apply(view, context, name) : undefined
      checkView(template, view)
      const split = recipientSplit(template, view, context)
      const page = split ? await personal.render(template, view, split) : undefined
      let rendered: RenderedTemplate
      if (page) {
        rendered = { subject: subjectOf(template, view), text: page.text, locale: template.locale }
        rendered.html = page.html
      } else {
        const views = await renderMarkdownFields(template, view, markdownCache)
        rendered = renderCompiled(template, views, partials, await loadEngines())
      }
      if (headers) rendered.headers = headers
      return rendered
    },
    async check(name, data = {}, { locale, requiredData = true } = {}) {
      const { template, view } = await prepare(name, data, locale)
      if (requiredData) checkView(template, view)
    },
    async warmup() {
      // The Markdown thread loads its modules alongside, and is kept from now on (see markdown.warm).
      const thread = markdown.warm()
      const engines = await loadEngines()
      // A first conversion compiles html-to-text's parser and selectors, which take longer than loading it.
      engines.pageText('<p>warm</p>', [])
      if (config.css || config.templates !== undefined || config.dir !== undefined) await loadJuice()
      if (config.builtins) {
        const locales = [config.locale, 'ko', 'en']
        await Promise.all(
          BUILTIN_TEMPLATE_NAMES.flatMap((name) => locales.map((locale) => compiler.compiledFor(name, locale))),
        )
        // One sample issue through the render-once path: the first real issue's page is then built by
        // compiled code (about 20 ms instead of 50). What fails here fails again, with its error, later.
        await warmIssue().catch(() => undefined)
      }
      // A thread that cannot start fails the renders that need it, with their own error; not the warm-up.
      await thread.catch(() => undefined)
    },
    close: () => markdown.close(),
  }

  async function warmIssue(): Promise<void> {
    const shared = { title: 'Warm-up', body: 'A **first** issue.', unsubscribeUrl: 'https://example.com/unsubscribe' }
    const to = [{ address: 'warm-up@example.com' }]
    for (const name of ['A', 'B']) {
      const job = { id: `warm-up:${name}`, type: 'newsletter', to, batchId: 'warm-up' }
      await renderer.render('newsletter-issue', { ...shared, name }, { job, shared })
    }
  }

  return renderer
}
