import Mustache from 'mustache'
import { escapeHtml } from '../html.js'
import type { CompiledTemplate, Engines, MarkdownCache } from './compile.js'
import { templateError } from './errors.js'
import { SAFE_URL_RE } from './options.js'
import { markdownPlaceholder, type RenderedMarkdown } from './text.js'
import type { RenderedTemplate } from './types.js'

const asIs = (value: unknown) => String(value)

const isMissing = (value: unknown) => value === undefined || value === null || value === ''

function lookup(view: Record<string, unknown>, path: string): unknown {
  let value: unknown = view
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null) return undefined
    value = (value as Record<string, unknown>)[part]
  }
  return value
}

/** What `checkView` reads, per template: the dotted paths split, and the URL values last found safe. */
interface ViewChecks {
  required: { field: string; dotted: boolean }[]
  urls: { field: string; dotted: boolean }[]
  /** Per URL field, the last value that passed (the same batch data comes in every render). */
  safe: (string | undefined)[]
}

const viewChecks = new WeakMap<CompiledTemplate, ViewChecks>()

function checksFor(template: CompiledTemplate): ViewChecks {
  let checks = viewChecks.get(template)
  if (!checks) {
    const fields = (list: readonly string[]) => list.map((field) => ({ field, dotted: field.includes('.') }))
    checks = {
      required: fields(template.required),
      urls: fields(template.urls),
      safe: template.urls.map(() => undefined),
    }
    viewChecks.set(template, checks)
  }
  return checks
}

const valueAt = (view: Record<string, unknown>, field: string, dotted: boolean) =>
  dotted ? lookup(view, field) : view[field]

/** Throws `E_TEMPLATE` for a required variable that is missing, or a URL variable that is not http(s). */
export function checkView(template: CompiledTemplate, view: Record<string, unknown>): void {
  const checks = checksFor(template)
  for (const { field, dotted } of checks.required) {
    if (isMissing(valueAt(view, field, dotted))) {
      const hint =
        field === 'unsubscribeUrl'
          ? ' (give the renderer unsubscribe.secret, or pass data.unsubscribeUrl)'
          : field === 'brandName' || field === 'frontendUrl'
            ? ` (set defaults.${field} in createTemplateRenderer, or pass data.${field})`
            : ''
      throw templateError(template.name, `missing required variable '${field}'${hint}`, field)
    }
  }
  for (let i = 0; i < checks.urls.length; i++) {
    const { field, dotted } = checks.urls[i] as ViewChecks['urls'][number]
    const value = valueAt(view, field, dotted)
    if (isMissing(value) || value === checks.safe[i]) continue
    if (typeof value !== 'string' || !SAFE_URL_RE.test(value)) {
      throw templateError(template.name, `${field} must be an http(s) URL`, field)
    }
    checks.safe[i] = value
  }
}

/** The view with its Markdown variables rendered, and the view the plain-text part is derived from. */
export interface MarkdownViews {
  view: Record<string, unknown>
  /** The view with placeholders where the Markdown goes: the Markdown's text is ready, not derived again. */
  textView: Record<string, unknown>
  parts: RenderedMarkdown[]
}

/** Renders the template's Markdown variables in `view`, one after the other. */
export async function renderMarkdownFields(
  template: CompiledTemplate,
  view: Record<string, unknown>,
  markdown: MarkdownCache,
): Promise<MarkdownViews> {
  const parts: RenderedMarkdown[] = []
  const textView: Record<string, unknown> = { ...view }
  for (const field of template.markdown) {
    const value = view[field]
    if (isMissing(value)) continue
    if (typeof value !== 'string') throw templateError(template.name, `${field} must be Markdown text`, field)
    const part = await markdown.render(template.name, field, value)
    view[field] = part.html
    textView[field] = markdownPlaceholder(parts.length)
    parts.push(part)
  }
  return { view, textView, parts }
}

/** The subject of a compiled template for one view: one line. */
export function renderSubject(
  template: CompiledTemplate,
  view: Record<string, unknown>,
  partials: Record<string, string>,
) {
  return Mustache.render(template.subject, view, partials, { escape: asIs })
    .replace(/\s*[\r\n]+\s*/g, ' ')
    .trim()
}

/** The subject, HTML and plain-text part of a compiled template for one view. */
export function renderCompiled(
  template: CompiledTemplate,
  { view, textView, parts }: MarkdownViews,
  partials: Record<string, string>,
  { pageText }: Pick<Engines, 'pageText'>,
): RenderedTemplate {
  try {
    const html =
      template.html !== undefined ? Mustache.render(template.html, view, partials, { escape: escapeHtml }) : undefined
    const subject = renderSubject(template, view, partials)
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
    return rendered
  } catch (cause) {
    throw templateError(template.name, `cannot render: ${(cause as Error).message}`, 'template', cause)
  }
}
