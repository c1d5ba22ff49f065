import { createRequire } from 'node:module'
import Mustache from 'mustache'
import { INLINED_BUILTINS } from './builtin/inlined.generated.js'
import { isTemplateError, templateError } from './errors.js'
import { inlineCss, type Juice } from './inline-css.js'
import type { Layout } from './layout.js'
import { createLru, type MarkdownRenderer } from './markdown.js'
import type { FoundTemplate, TemplateSources } from './sources.js'
import { createPageText, type RenderedMarkdown } from './text.js'

const PARTIAL_RE = /\{\{>\s*([\w./-]+)\s*\}\}/g

/** A template ready to render in one locale: layout placed, partials expanded, CSS inlined, Mustache parsed. */
export interface CompiledTemplate {
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
  /** Variables that differ per recipient: the rest of a render is shared and done once (see `personal.ts`). */
  recipientData: readonly string[]
}

/** The HTML-to-text conversion the renderer uses. */
export interface Engines {
  /** The plain-text part of a page, its Markdown variables given as placeholders (see `createPageText`). */
  pageText(html: string, markdown: readonly RenderedMarkdown[]): string
  /** The same without line wrapping: one line per paragraph (for the personalised render). */
  pageLines(html: string, markdown: readonly RenderedMarkdown[]): string
}
let textEngine: Promise<Engines> | undefined
let juiceEngine: Promise<Juice> | undefined

/** html-to-text is loaded with the first template rendered: importing mailstream stays light. */
export function loadEngines(): Promise<Engines> {
  textEngine ??= import('html-to-text')
    .catch(requireInstead('html-to-text'))
    .then(({ compile }) => ({ pageText: createPageText(compile), pageLines: createPageText(compile, false) }))
  return textEngine
}

/** juice is the slowest import by far: loaded only for templates with CSS of their own to inline. */
export function loadJuice(): Promise<Juice> {
  juiceEngine ??= import('juice').then((module) => module.default, requireInstead('juice'))
  return juiceEngine
}

/** jest runs CommonJS in a VM where `import()` fails: there, the CommonJS build of the package is required. */
function requireInstead(name: string) {
  return (error: unknown) => {
    if ((error as NodeJS.ErrnoException)?.code !== 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING') throw error
    return createRequire(import.meta.url)(name)
  }
}

/** A built-in template as inlined at build time, or undefined for one the generated module does not have. */
function prebuilt(name: string, locale: string): string | undefined {
  const body = INLINED_BUILTINS.bodies[`${name}.${locale}`]
  const layout = INLINED_BUILTINS.layouts[locale]
  return body !== undefined && layout !== undefined ? layout.head + body + layout.tail : undefined
}

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

export interface TemplateCompilerOptions {
  sources: TemplateSources
  layout: Layout
  /** Markdown rendering; its thread is started while a template with Markdown variables compiles. */
  markdown: Pick<MarkdownRenderer, 'start'>
  partials: Record<string, string>
  /** Extra CSS, inlined into every template. */
  css?: string | undefined
}

export interface TemplateCompiler {
  /** The compiled template for a name and locale; compiled once, failures not kept. */
  compiledFor(name: string, locale: string | undefined): Promise<CompiledTemplate>
}

/** Compiles templates once per name and locale chain, and keeps them. */
export function createTemplateCompiler(options: TemplateCompilerOptions): TemplateCompiler {
  const { sources, layout, partials } = options
  const compiled = new Map<string, Promise<CompiledTemplate>>()

  /** The built-in templates were inlined at build time; only extra CSS makes them need juice again. */
  const usesPrebuilt = (found: FoundTemplate) => found.builtin && !options.css

  function compileHtml(name: string, body: string, found: FoundTemplate, locale: string, juice: Juice | undefined) {
    try {
      const ready = usesPrebuilt(found) ? prebuilt(name, locale) : undefined
      // Inlined once here, on the template: Mustache tags are kept as they are by juice.
      const html =
        ready !== undefined
          ? layout.fillTheme(ready)
          : inlineCss(
              juice as Juice,
              expandPartials(
                layout.wrap(body, { name, locale, builtin: found.builtin, layout: found.definition.layout }),
                partials,
              ),
              options.css,
            )
      Mustache.parse(html)
      return html
    } catch (cause) {
      throw templateError(name, `cannot compile the html: ${(cause as Error).message}`, 'html', cause)
    }
  }

  function compile(name: string, found: FoundTemplate, chain: readonly string[], juice: Juice | undefined) {
    const { definition } = found
    const { source, locale } = sources.pick(definition, chain)
    if (source.html === undefined && source.text === undefined) {
      throw templateError(name, `no html or text for locale '${locale}'`, 'template')
    }
    const html = source.html !== undefined ? compileHtml(name, source.html, found, locale, juice) : undefined
    try {
      if (source.subject !== undefined) Mustache.parse(source.subject)
      if (source.text !== undefined) Mustache.parse(source.text)
    } catch (cause) {
      throw templateError(name, `cannot compile: ${(cause as Error).message}`, 'template', cause)
    }
    const required = [...(definition.required ?? [])]
    if (definition.unsubscribe === 'required' && !required.includes('unsubscribeUrl')) required.push('unsubscribeUrl')
    // The layout links to these: whatever the template says, they are checked when present.
    const urls = [...new Set([...(definition.urls ?? []), 'unsubscribeUrl', 'frontendUrl', 'logoUrl', 'logoUrlDark'])]
    const compiledTemplate: CompiledTemplate = {
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
      recipientData: definition.recipientData ?? [],
    }
    return compiledTemplate
  }

  /** juice, unless the template's HTML was inlined at build time (or it has none). */
  function juiceFor(name: string, found: FoundTemplate, chain: readonly string[]): Promise<Juice | undefined> {
    const { source, locale } = sources.pick(found.definition, chain)
    if (source.html === undefined || (usesPrebuilt(found) && prebuilt(name, locale) !== undefined)) {
      return Promise.resolve(undefined)
    }
    return loadJuice()
  }

  // The same templates by the locale a job asked for (few distinct), then by name: no chain to work out.
  const byLocale = new Map<string, Map<string, Promise<CompiledTemplate>>>()

  function compiledFor(name: string, locale: string | undefined): Promise<CompiledTemplate> {
    const asked = locale ?? ''
    let named = byLocale.get(asked)
    const known = named?.get(name)
    if (known) return known
    const chain = sources.localeChain(locale)
    const key = `${name}\u0000${chain.join(',')}`
    let entry = compiled.get(key)
    if (!entry) {
      const found = sources.definitionOf(name, chain).then((result) => {
        // The render thread loads while the template compiles, not after.
        if (result.definition.markdown?.length) options.markdown.start()
        return result
      })
      // The text engine loads meanwhile: the first render needs it.
      void loadEngines().catch(() => {})
      entry = found.then(async (result) => compile(name, result, chain, await juiceFor(name, result, chain)))
      compiled.set(key, entry)
      // A failed compile is not kept: a fixed file is read again on the next render.
      entry.catch(() => compiled.delete(key))
    }
    if (!named) {
      if (byLocale.size >= 64) byLocale.clear()
      named = new Map()
      byLocale.set(asked, named)
    }
    const found = entry
    named.set(name, found)
    found.catch(() => {
      if (named.get(name) === found) named.delete(name)
    })
    return found
  }

  return { compiledFor }
}

export interface MarkdownCache {
  /** A Markdown variable rendered, or `E_TEMPLATE` naming the template and the variable. */
  render(template: string, field: string, value: string): Promise<RenderedMarkdown>
}

/** Markdown is rendered once per distinct text: the promise is cached, so concurrent sends share it. */
export function createMarkdownCache(markdown: Pick<MarkdownRenderer, 'render'>): MarkdownCache {
  // Failures are kept too: a batch with one hostile body pays the time budget once, not per recipient.
  const cache = createLru<Promise<RenderedMarkdown>>(50)
  return {
    async render(template, field, value) {
      let rendered = cache.get(value)
      if (rendered === undefined) {
        const entry = markdown.render(value)
        rendered = entry
        cache.set(value, entry)
        // Only a closed renderer or a thread that could not start is worth another try.
        entry.catch((error) => {
          if (!isTemplateError(error) && cache.get(value) === entry) cache.delete(value)
        })
      }
      try {
        return await rendered
      } catch (cause) {
        if (!isTemplateError(cause)) throw cause
        throw templateError(template, `${field}: ${cause.message.replace(/^\[mailstream\] /, '')}`, field, cause)
      }
    },
  }
}
