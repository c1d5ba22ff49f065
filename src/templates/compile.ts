import { createRequire } from 'node:module'
import Mustache from 'mustache'
import { isTemplateError, templateError } from './errors.js'
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
}

export interface Engines {
  juice: typeof import('juice')
  /** The plain-text part of a page, its Markdown variables given as placeholders (see `createPageText`). */
  pageText(html: string, markdown: readonly RenderedMarkdown[]): string
}
let engines: Promise<Engines> | undefined

/** juice and html-to-text are loaded with the first template compiled: importing mailstream stays light. */
export function loadEngines(): Promise<Engines> {
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

  function compileHtml(name: string, body: string, found: FoundTemplate, locale: string, juice: Engines['juice']) {
    const composed = layout.wrap(body, { name, locale, builtin: found.builtin, layout: found.definition.layout })
    try {
      // Inlined once here, on the template: Mustache tags are kept as they are by juice.
      const html = juice(expandPartials(composed, partials), {
        extraCss: options.css ?? '',
        preserveMediaQueries: true,
        removeStyleTags: true,
        applyWidthAttributes: true,
        applyHeightAttributes: true,
      })
      Mustache.parse(html)
      return html
    } catch (cause) {
      throw templateError(name, `cannot compile the html: ${(cause as Error).message}`, 'html', cause)
    }
  }

  function compile(name: string, found: FoundTemplate, chain: readonly string[], { juice }: Engines): CompiledTemplate {
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

  function compiledFor(name: string, locale: string | undefined): Promise<CompiledTemplate> {
    const chain = sources.localeChain(locale)
    const key = `${name}\u0000${chain.join(',')}`
    let entry = compiled.get(key)
    if (!entry) {
      const found = sources.definitionOf(name, chain).then((result) => {
        // The render thread loads while the template compiles, not after.
        if (result.definition.markdown?.length) options.markdown.start()
        return result
      })
      entry = Promise.all([found, loadEngines()]).then(([result, loaded]) => compile(name, result, chain, loaded))
      compiled.set(key, entry)
      // A failed compile is not kept: a fixed file is read again on the next render.
      entry.catch(() => compiled.delete(key))
    }
    return entry
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
