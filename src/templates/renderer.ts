import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { resolve, sep } from 'node:path'
import Mustache from 'mustache'
import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import { escapeHtml } from '../html.js'
import { isValidEmail, LOCALE_RE, TEMPLATE_NAME_RE } from '../job.js'
import { parseOptions } from '../options.js'
import type { RenderContext, RenderedEmail, TemplateRendererLike } from '../transport.js'
import { BUILTIN_LAYOUT, BUILTIN_TEMPLATES, LAYOUT_STRINGS, MARKDOWN_CSS, THEME_DEFAULTS } from './builtin/index.js'
import { createLru, createMarkdownRenderer } from './markdown.js'
import { createPageText, markdownPlaceholder, type RenderedMarkdown } from './text.js'
import {
  createUnsubscribeToken,
  listUnsubscribeHeaders,
  type UnsubscribeSecret,
  unsubscribeUrl,
} from './unsubscribe.js'

/** Subject and bodies of a template, all Mustache. */
export interface TemplateSource {
  subject?: string
  /** The body; placed in the layout at `{{{content}}}` unless `layout: false`. */
  html?: string
  /** The plain-text part. Default: derived from the rendered HTML. */
  text?: string
}

export interface TemplateDefinition extends TemplateSource {
  /** Per-locale variants (`ko`, `en`, `en-US`, ...); the fields above are the fallback. */
  locales?: Record<string, TemplateSource>
  /** Variables (dotted paths) that must be present and non-empty; a missing one is `E_TEMPLATE`. */
  required?: string[]
  /** Variables holding Markdown: rendered once per distinct text, sanitised, CSS inlined. Use `{{{name}}}`. */
  markdown?: string[]
  /** Variables that, when present, must be http(s) URLs (a `javascript:` link is `E_TEMPLATE`). */
  urls?: string[]
  /** Default data for this template, under the renderer's `defaults` and the job's data. */
  data?: Record<string, unknown>
  /** Set false for a template that is a whole HTML document. Default true. */
  layout?: boolean
  /**
   * Add an unsubscribe link (`{{unsubscribeUrl}}`) and `List-Unsubscribe` headers. `'required'`
   * makes a render without one an `E_TEMPLATE`. Default false.
   */
  unsubscribe?: boolean | 'required'
}

export interface TemplateDefaults {
  /** Shown in the header and footer, and in built-in subjects. */
  brandName?: string
  /** Buttons and links. Hex, like `#3b5bdb`. */
  brandColor?: string
  textColor?: string
  backgroundColor?: string
  /** Shown in the header instead of the brand name. */
  logoUrl?: string
  /** The site the header and footer link to; unsubscribe links default to `<frontendUrl>/unsubscribe`. */
  frontendUrl?: string
  /** Anything else is default data for every template. */
  [key: string]: unknown
}

export interface UnsubscribeOptions {
  /** HMAC secret (16+ characters), or a list for rotation: the first signs, all verify. */
  secret: UnsubscribeSecret
  /** Page the link opens, and that receives the one-click POST; `?token=...` is added. Default `<frontendUrl>/unsubscribe`. */
  url?: string
  /** Address for `List-Unsubscribe: <mailto:...>`; the subject carries the token. */
  mailto?: string
  /** List named in tokens when the job data has no `list`. Default `default`. */
  list?: string
  /** Tokens expire after this. Default: never (links in old mail keep working). */
  ttlSeconds?: number
}

export interface TemplateRendererOptions {
  /** A folder of templates: `<name>.html`, `<name>.<locale>.html`, `.txt` likewise, and `<name>.json` (subject, required, ...). */
  dir?: string
  /** Templates given inline; they win over `dir` and the built-ins. */
  templates?: Record<string, TemplateDefinition>
  /** Layout for your templates, with `{{{content}}}`; false for none. Default: the built-in layout. */
  layout?: string | false
  /** Mustache partials, `{{> name}}`. */
  partials?: Record<string, string>
  /** Extra CSS, inlined into every template. */
  css?: string
  /** Brand and default data. */
  defaults?: TemplateDefaults
  /** Locale when a job names none. Default `en`. */
  locale?: string
  /** Signed unsubscribe links and one-click headers. */
  unsubscribe?: UnsubscribeOptions
  /** Offer the built-in templates. Default true. */
  builtins?: boolean
  /**
   * Time budget for rendering one Markdown text, in a worker thread off the event loop. A text that
   * takes longer (or nests deeper than 100 elements) is `E_TEMPLATE`, remembered for that text.
   * Default 5000.
   */
  renderTimeoutMs?: number
}

export interface RenderedTemplate extends RenderedEmail {
  subject: string
  /** Absent for a text-only template. */
  html?: string
  text: string
  /** The locale the template was found in. */
  locale: string
}

export interface TemplateRenderer extends TemplateRendererLike {
  /** Renders a template; throws `MailstreamError` `E_TEMPLATE` (with `field`) when it cannot. */
  render(name: string, data?: Record<string, unknown>, context?: RenderContext): Promise<RenderedTemplate>
  /** Ends the Markdown render thread, if one runs (it also ends by itself when idle). */
  close(): Promise<void>
}

const VARIABLE_RE = /^[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$][\w$-]*)*$/
const SAFE_URL_RE = /^https?:\/\/[^\s<>"'`]+$/i
const PARTIAL_RE = /\{\{>\s*([\w./-]+)\s*\}\}/g
const STATIC_RE = /\[\[(\w+)\]\]/g

const httpUrl = z.string().regex(SAFE_URL_RE, 'must be an http(s) URL')
const colour = z.string().regex(/^#(?:[0-9A-Fa-f]{3}){1,2}$/, 'must be a hex colour like #3b5bdb')
const variables = z.array(z.string().regex(VARIABLE_RE, 'must be a variable name or dotted path')).optional()
const sourceSchema = z.strictObject({
  subject: z.string().optional(),
  html: z.string().optional(),
  text: z.string().optional(),
})
const definitionSchema = sourceSchema.extend({
  locales: z.record(z.string().regex(LOCALE_RE, 'must be a language tag like ko or en-US'), sourceSchema).optional(),
  required: variables,
  markdown: variables,
  urls: variables,
  data: z.record(z.string(), z.unknown()).optional(),
  layout: z.boolean().optional(),
  unsubscribe: z.union([z.boolean(), z.literal('required')]).optional(),
})

const optionsSchema = z.strictObject({
  dir: z.string().min(1).optional(),
  templates: z
    .record(z.string().regex(TEMPLATE_NAME_RE, 'template names are A-Z a-z 0-9 . _ / -'), definitionSchema)
    .optional(),
  layout: z
    .union([
      z.string().refine((value) => value.includes('{{{content}}}'), { message: 'must contain {{{content}}}' }),
      z.literal(false),
    ])
    .optional(),
  partials: z.record(z.string().regex(/^[\w./-]+$/, 'partial names are A-Z a-z 0-9 _ . / -'), z.string()).optional(),
  css: z.string().optional(),
  defaults: z
    .looseObject({
      brandName: z.string().min(1).max(200).optional(),
      brandColor: colour.optional(),
      textColor: colour.optional(),
      backgroundColor: colour.optional(),
      logoUrl: httpUrl.optional(),
      frontendUrl: httpUrl.optional(),
    })
    .optional(),
  locale: z.string().regex(LOCALE_RE, 'must be a language tag like ko or en-US').default('en'),
  unsubscribe: z
    .strictObject({
      secret: z.union([
        z.string().min(16, 'must be at least 16 characters'),
        z.array(z.string().min(16, 'must be at least 16 characters')).min(1),
      ]),
      url: httpUrl.optional(),
      mailto: z
        .string()
        .refine((value) => isValidEmail(value), { message: 'must be an email address' })
        .optional(),
      list: z.string().min(1).max(200).optional(),
      ttlSeconds: z.number().int().positive().optional(),
    })
    .optional(),
  builtins: z.boolean().default(true),
  renderTimeoutMs: z.number().int().min(10).max(600_000).default(5000),
})

interface Compiled {
  name: string
  locale: string
  subject: string
  html?: string
  text?: string
  required: readonly string[]
  markdown: readonly string[]
  urls: readonly string[]
  data: Record<string, unknown>
  unsubscribe: boolean | 'required'
}

const asIs = (value: unknown) => String(value)

interface Engines {
  juice: typeof import('juice')
  /** The plain-text part of a page, its Markdown variables given as placeholders (see `createPageText`). */
  pageText(html: string, markdown: readonly RenderedMarkdown[]): string
}
let engines: Promise<Engines> | undefined

/** juice and html-to-text are loaded with the first template compiled: importing mailstream stays light. */
function loadEngines(): Promise<Engines> {
  engines ??= Promise.all([
    import('juice').then((module) => module.default, requireInstead('juice')),
    import('html-to-text').catch(requireInstead('html-to-text')),
  ]).then(([juice, { compile }]) => ({ juice, pageText: createPageText(compile) }))
  return engines
}

/** jest runs CommonJS in a VM where `import()` fails: there, the CommonJS build of the package is required. */
function requireInstead(name: string) {
  return (error: unknown) => {
    if ((error as NodeJS.ErrnoException)?.code !== 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING') throw error
    return createRequire(import.meta.url)(name)
  }
}

function templateError(template: string, message: string, field?: string, cause?: unknown): MailstreamError {
  return new MailstreamError('E_TEMPLATE', `template '${template}': ${message}`, {
    ...(field !== undefined && { field }),
    ...(cause !== undefined && { cause }),
  })
}

const isTemplateError = (error: unknown): error is MailstreamError =>
  error instanceof MailstreamError && error.code === 'E_TEMPLATE'

function lookup(view: Record<string, unknown>, path: string): unknown {
  let value: unknown = view
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

const isMissing = (value: unknown) => value === undefined || value === null || value === ''

function expandPartials(source: string, partials: Record<string, string>): string {
  let out = source
  // Partials are placed in the source before CSS is inlined, so that their markup is styled too.
  for (let depth = 0; depth < 10; depth++) {
    const next = out.replace(PARTIAL_RE, (tag, name: string) => partials[name] ?? tag)
    if (next === out) break
    out = next
  }
  return out
}

const fillStatic = (source: string, values: Record<string, string>) =>
  source.replace(STATIC_RE, (tag, key: string) => values[key] ?? tag)

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Renders named templates: Mustache (HTML-escaped), in a responsive layout, CSS inlined once per
 * template and locale, a plain-text part derived from the HTML, Markdown rendered and sanitised
 * once per distinct text, and signed unsubscribe links with RFC 8058 one-click headers.
 */
export function createTemplateRenderer(options: TemplateRendererOptions = {}): TemplateRenderer {
  const config = parseOptions(optionsSchema, options, 'createTemplateRenderer')
  const { brandColor, textColor, backgroundColor } = config.defaults ?? {}
  const theme: Record<string, string> = {
    ...THEME_DEFAULTS,
    ...(brandColor !== undefined && { brandColor }),
    ...(textColor !== undefined && { textColor }),
    ...(backgroundColor !== undefined && { backgroundColor }),
  }
  const defaults: Record<string, unknown> = { ...config.defaults }
  const partials = config.partials ?? {}
  const markdownCss = fillStatic(MARKDOWN_CSS, theme) + (config.css ?? '')
  const dir = config.dir !== undefined ? resolve(config.dir) : undefined

  const unsubscribe = config.unsubscribe
  let unsubscribeBase: string | undefined
  if (unsubscribe) {
    const frontend = config.defaults?.frontendUrl
    unsubscribeBase = unsubscribe.url ?? (frontend ? `${frontend.replace(/\/+$/, '')}/unsubscribe` : undefined)
    if (!unsubscribeBase) {
      throw new MailstreamError(
        'E_CONFIG',
        'createTemplateRenderer: unsubscribe.url: give the unsubscribe page, or defaults.frontendUrl',
        { field: 'unsubscribe.url' },
      )
    }
  }

  const compiled = new Map<string, Promise<Compiled>>()
  const markdown = createMarkdownRenderer({ css: markdownCss, timeoutMs: config.renderTimeoutMs })
  // Failures are kept too: a batch with one hostile body pays the time budget once, not per recipient.
  const markdownCache = createLru<Promise<RenderedMarkdown>>(50)

  function localeChain(locale: string | undefined): string[] {
    const chain: string[] = []
    for (const tag of [locale, config.locale]) {
      if (typeof tag !== 'string' || !LOCALE_RE.test(tag)) continue
      for (const candidate of [tag.toLowerCase(), (tag.split('-')[0] as string).toLowerCase()]) {
        if (!chain.includes(candidate)) chain.push(candidate)
      }
    }
    return chain
  }

  /** The definition of a template: inline, then from `dir`, then built in. */
  async function definitionOf(
    name: string,
    chain: readonly string[],
  ): Promise<{ definition: TemplateDefinition; builtin: boolean }> {
    const inline = config.templates?.[name]
    if (inline) return { definition: inline as TemplateDefinition, builtin: false }
    if (dir !== undefined) {
      const fromDir = await readFromDir(name, chain)
      if (fromDir) return { definition: fromDir, builtin: false }
    }
    const builtin = config.builtins ? BUILTIN_TEMPLATES[name as keyof typeof BUILTIN_TEMPLATES] : undefined
    if (builtin && Object.hasOwn(BUILTIN_TEMPLATES, name)) return { definition: builtin, builtin: true }
    throw templateError(name, 'no such template', 'template')
  }

  async function readFromDir(name: string, chain: readonly string[]): Promise<TemplateDefinition | undefined> {
    const root = dir as string
    const base = resolve(root, name)
    if (name.split('/').some((part) => part === '..' || part === '.' || part === '') || !base.startsWith(root + sep)) {
      throw templateError(name, 'template names may not leave the template folder', 'template')
    }
    const locales: Record<string, TemplateSource> = {}
    for (const tag of chain) {
      const html = await readOptional(`${base}.${tag}.html`)
      const text = await readOptional(`${base}.${tag}.txt`)
      if (html !== undefined || text !== undefined) {
        locales[tag] = { ...(html !== undefined && { html }), ...(text !== undefined && { text }) }
      }
    }
    const html = await readOptional(`${base}.html`)
    const text = await readOptional(`${base}.txt`)
    const json = await readOptional(`${base}.json`)
    if (html === undefined && text === undefined && Object.keys(locales).length === 0) return undefined
    let meta: Record<string, unknown> = {}
    if (json !== undefined) {
      try {
        meta = JSON.parse(json)
      } catch (cause) {
        throw templateError(name, `${name}.json is not valid JSON`, 'template', cause)
      }
    }
    const { subject, ...rest } = meta
    const definition: Record<string, unknown> = { ...rest, locales }
    if (typeof subject === 'object' && subject !== null) {
      for (const [tag, value] of Object.entries(subject)) {
        const key = tag.toLowerCase()
        if (locales[key]) locales[key].subject = value as string
        else if (typeof value === 'string') locales[key] = { subject: value }
      }
    } else if (subject !== undefined) definition.subject = subject
    if (html !== undefined) definition.html = html
    if (text !== undefined) definition.text = text
    const parsed = definitionSchema.safeParse(definition)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw templateError(name, `${name}.json: ${issue?.path.join('.')}: ${issue?.message}`, 'template', parsed.error)
    }
    return parsed.data as TemplateDefinition
  }

  /** Picks the locale variant: the job's locale, its language, the default locale, its language, then any. */
  function pick(definition: TemplateDefinition, chain: readonly string[]): { source: TemplateSource; locale: string } {
    const variants = new Map(
      Object.entries(definition.locales ?? {}).map(([tag, source]) => [tag.toLowerCase(), source]),
    )
    let locale = chain.find((tag) => variants.has(tag))
    const hasFallback = definition.html !== undefined || definition.text !== undefined
    if (locale === undefined && !hasFallback && variants.size > 0) {
      locale = variants.has('en') ? 'en' : (variants.keys().next().value as string)
    }
    const variant = locale !== undefined ? variants.get(locale) : undefined
    return {
      locale: locale ?? chain[0] ?? config.locale,
      source: {
        subject: variant?.subject ?? definition.subject,
        html: variant?.html ?? definition.html,
        text: variant?.text ?? definition.text,
      } as TemplateSource,
    }
  }

  function compile(
    name: string,
    definition: TemplateDefinition,
    builtin: boolean,
    chain: readonly string[],
    { juice }: Engines,
  ): Compiled {
    const { source, locale } = pick(definition, chain)
    if (source.html === undefined && source.text === undefined) {
      throw templateError(name, `no html or text for locale '${locale}'`, 'template')
    }
    let html: string | undefined
    if (source.html !== undefined) {
      const layout = definition.layout === false ? false : builtin ? BUILTIN_LAYOUT : (config.layout ?? BUILTIN_LAYOUT)
      const strings = LAYOUT_STRINGS[locale.split('-')[0] as string] ?? (LAYOUT_STRINGS.en as Record<string, string>)
      const body = source.html
      const composed =
        layout === false
          ? body
          : fillStatic(layout, layout === BUILTIN_LAYOUT ? { ...theme, ...strings } : {}).replace(
              '{{{content}}}',
              () => body,
            )
      try {
        // Inlined once here, on the template: Mustache tags are kept as they are by juice.
        html = juice(expandPartials(composed, partials), {
          extraCss: config.css ?? '',
          preserveMediaQueries: true,
          removeStyleTags: true,
          applyWidthAttributes: true,
          applyHeightAttributes: true,
        })
        Mustache.parse(html)
      } catch (cause) {
        throw templateError(name, `cannot compile the html: ${(cause as Error).message}`, 'html', cause)
      }
    }
    try {
      if (source.subject !== undefined) Mustache.parse(source.subject)
      if (source.text !== undefined) Mustache.parse(source.text)
    } catch (cause) {
      throw templateError(name, `cannot compile: ${(cause as Error).message}`, 'template', cause)
    }
    const required = [...(definition.required ?? [])]
    if (definition.unsubscribe === 'required' && !required.includes('unsubscribeUrl')) required.push('unsubscribeUrl')
    // The layout links to these: whatever the template says, they are checked when present.
    const urls = [...new Set([...(definition.urls ?? []), 'unsubscribeUrl', 'frontendUrl', 'logoUrl'])]
    return {
      name,
      locale,
      subject: source.subject ?? '',
      ...(html !== undefined && { html }),
      ...(source.text !== undefined && { text: source.text }),
      required,
      markdown: definition.markdown ?? [],
      urls,
      data: definition.data ?? {},
      unsubscribe: definition.unsubscribe ?? false,
    }
  }

  function compiledFor(name: string, locale: string | undefined): Promise<Compiled> {
    const chain = localeChain(locale)
    const key = `${name}\u0000${chain.join(',')}`
    let entry = compiled.get(key)
    if (!entry) {
      const found = definitionOf(name, chain).then((result) => {
        // The render thread loads while the template compiles, not after.
        if (result.definition.markdown?.length) markdown.start()
        return result
      })
      entry = Promise.all([found, loadEngines()]).then(([{ definition, builtin }, loaded]) =>
        compile(name, definition, builtin, chain, loaded),
      )
      compiled.set(key, entry)
      // A failed compile is not kept: a fixed file is read again on the next render.
      entry.catch(() => compiled.delete(key))
    }
    return entry
  }

  /** Markdown is rendered once per distinct text: the promise is cached, so concurrent sends share it. */
  async function markdownOf(template: string, field: string, value: string): Promise<RenderedMarkdown> {
    let rendered = markdownCache.get(value)
    if (rendered === undefined) {
      const entry = markdown.render(value)
      rendered = entry
      markdownCache.set(value, entry)
      // Only a closed renderer or a thread that could not start is worth another try.
      entry.catch((error) => {
        if (!isTemplateError(error) && markdownCache.get(value) === entry) markdownCache.delete(value)
      })
    }
    try {
      return await rendered
    } catch (cause) {
      if (!isTemplateError(cause)) throw cause
      throw templateError(template, `${field}: ${cause.message.replace(/^\[mailstream\] /, '')}`, field, cause)
    }
  }

  function addUnsubscribe(
    view: Record<string, unknown>,
    context: RenderContext,
    template: string,
  ): Record<string, string> | undefined {
    const given = view.unsubscribeUrl
    let url = typeof given === 'string' && given !== '' ? given : undefined
    let mailto: string | undefined
    const email = context.job?.to[0]?.address ?? (typeof view.email === 'string' ? view.email : undefined)
    if (url === undefined && unsubscribe && email) {
      const list = typeof view.list === 'string' && view.list !== '' ? view.list : (unsubscribe.list ?? 'default')
      const expiresAt = unsubscribe.ttlSeconds !== undefined ? Date.now() + unsubscribe.ttlSeconds * 1000 : undefined
      const token = createUnsubscribeToken(
        { email, list, ...(expiresAt !== undefined && { expiresAt }) },
        unsubscribe.secret,
      )
      url = unsubscribeUrl(unsubscribeBase as string, token)
      if (unsubscribe.mailto) {
        mailto = `mailto:${unsubscribe.mailto}?subject=${encodeURIComponent(`unsubscribe ${token}`)}`
      }
    }
    if (url === undefined) return undefined
    if (!SAFE_URL_RE.test(url)) throw templateError(template, 'unsubscribeUrl must be an http(s) URL', 'unsubscribeUrl')
    view.unsubscribeUrl = url
    return listUnsubscribeHeaders(url, mailto)
  }

  return {
    async render(name, data = {}, context = {}) {
      if (typeof name !== 'string' || !TEMPLATE_NAME_RE.test(name)) {
        throw new MailstreamError('E_TEMPLATE', `template: '${String(name)}' is not a template name`, {
          field: 'template',
        })
      }
      if (typeof data !== 'object' || data === null || Array.isArray(data)) {
        throw templateError(name, 'data must be an object', 'data')
      }
      const template = await compiledFor(name, context.locale)
      const view: Record<string, unknown> = { ...template.data, ...defaults, ...data }
      const headers = template.unsubscribe ? addUnsubscribe(view, context, name) : undefined
      for (const field of template.required) {
        if (isMissing(lookup(view, field))) {
          const hint =
            field === 'unsubscribeUrl' ? ' (give the renderer unsubscribe.secret, or pass data.unsubscribeUrl)' : ''
          throw templateError(name, `missing required variable '${field}'${hint}`, field)
        }
      }
      for (const field of template.urls) {
        const value = lookup(view, field)
        if (!isMissing(value) && (typeof value !== 'string' || !SAFE_URL_RE.test(value))) {
          throw templateError(name, `${field} must be an http(s) URL`, field)
        }
      }
      const parts: RenderedMarkdown[] = []
      // The plain-text part is derived from the page with placeholders: the Markdown's text is ready.
      const textView: Record<string, unknown> = { ...view }
      for (const field of template.markdown) {
        const value = view[field]
        if (isMissing(value)) continue
        if (typeof value !== 'string') throw templateError(name, `${field} must be Markdown text`, field)
        const part = await markdownOf(name, field, value)
        view[field] = part.html
        textView[field] = markdownPlaceholder(parts.length)
        parts.push(part)
      }
      const { pageText } = await loadEngines()
      try {
        const html =
          template.html !== undefined
            ? Mustache.render(template.html, view, partials, { escape: escapeHtml })
            : undefined
        const subject = Mustache.render(template.subject, view, partials, { escape: asIs })
          .replace(/\s*[\r\n]+\s*/g, ' ')
          .trim()
        const text =
          template.text !== undefined
            ? Mustache.render(template.text, view, partials, { escape: asIs })
            : html === undefined
              ? ''
              : pageText(
                  parts.length > 0
                    ? Mustache.render(template.html as string, textView, partials, { escape: escapeHtml })
                    : html,
                  parts,
                ).trim()
        const rendered: RenderedTemplate = { subject, text, locale: template.locale }
        if (html !== undefined) rendered.html = html
        if (headers) rendered.headers = headers
        return rendered
      } catch (cause) {
        throw templateError(name, `cannot render: ${(cause as Error).message}`, 'template', cause)
      }
    },
    close: () => markdown.close(),
  }
}
