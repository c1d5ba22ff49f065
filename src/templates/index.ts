import { MailstreamError } from '../errors.js'
import { TEMPLATE_NAME_RE } from '../job.js'
import { parseOptions } from '../options.js'
import { createMarkdownCache, createTemplateCompiler, loadEngines } from './compile.js'
import { templateError } from './errors.js'
import { createLayout } from './layout.js'
import { createMarkdownRenderer } from './markdown.js'
import { optionsSchema } from './options.js'
import { checkView, renderCompiled, renderMarkdownFields } from './render.js'
import { createTemplateSources } from './sources.js'
import type { TemplateDefinition, TemplateRenderer, TemplateRendererOptions } from './types.js'
import { createUnsubscribeLinks } from './unsubscribe-links.js'

export type {
  RenderedTemplate,
  TemplateDefaults,
  TemplateDefinition,
  TemplateRenderer,
  TemplateRendererOptions,
  TemplateSource,
  UnsubscribeOptions,
} from './types.js'

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
  const markdown = createMarkdownRenderer({ css: layout.markdownCss, timeoutMs: config.renderTimeoutMs })
  const markdownCache = createMarkdownCache(markdown)
  const sources = createTemplateSources({
    templates: config.templates as Record<string, TemplateDefinition> | undefined,
    dir: config.dir,
    builtins: config.builtins,
    locale: config.locale,
  })
  const compiler = createTemplateCompiler({ sources, layout, markdown, partials, css: config.css })

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
      const template = await compiler.compiledFor(name, context.locale)
      const view: Record<string, unknown> = { ...template.data, ...defaults, ...data }
      const headers = template.unsubscribe ? links.apply(view, context, name) : undefined
      checkView(template, view)
      const views = await renderMarkdownFields(template, view, markdownCache)
      const rendered = renderCompiled(template, views, partials, await loadEngines())
      if (headers) rendered.headers = headers
      return rendered
    },
    close: () => markdown.close(),
  }
}
