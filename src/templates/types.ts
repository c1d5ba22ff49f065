import type { RenderContext, RenderedEmail, TemplateRendererLike } from '../transport.js'
import type { UnsubscribeSecret } from './unsubscribe.js'

/** Subject and bodies of a template, all Mustache. */
export interface TemplateSource {
  subject?: string
  /** The body; placed in the layout at `{{{content}}}` unless `layout: false`. */
  html?: string
  /** The plain-text part. Default: derived from the rendered HTML. */
  text?: string
}

/** A template: its sources, per-locale variants and what a render checks. */
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
  /**
   * Variables (top-level names) that differ per recipient, like `name`: the rest of the page is
   * rendered once per distinct other data and kept, and each recipient's values are put into it.
   * The output is the same as a whole render; a template that uses one of these outside a plain
   * `{{name}}` slot (or a `{{#name}}` section) is simply rendered whole. Batch jobs get this for
   * their recipients' own data without declaring it.
   */
  recipientData?: string[]
  /** Set false for a template that is a whole HTML document. Default true. */
  layout?: boolean
  /**
   * Add an unsubscribe link (`{{unsubscribeUrl}}`) and `List-Unsubscribe` headers. `'required'`
   * makes a render without one an `E_TEMPLATE`. Default false.
   */
  unsubscribe?: boolean | 'required'
}

/** Brand, theme and default data shared by every template. */
export interface TemplateDefaults {
  /** Shown in the header and footer, and in built-in subjects. */
  brandName?: string
  /** Buttons and links. Hex, like `#3b5bdb`. */
  brandColor?: string
  textColor?: string
  backgroundColor?: string
  /**
   * Shown in the header instead of the brand name, on a small white backing so that a dark logo
   * stays visible when a mail app darkens the email.
   */
  logoUrl?: string
  /**
   * A logo for dark backgrounds: shown instead of `logoUrl`, without the backing, where a mail app
   * darkens the email and says so to the email's styles (Outlook.com, Outlook apps). Needs `logoUrl`.
   */
  logoUrlDark?: string
  /** The site the header and footer link to; unsubscribe links default to `<frontendUrl>/unsubscribe`. */
  frontendUrl?: string
  /** Anything else is default data for every template. */
  [key: string]: unknown
}

/** Signed unsubscribe links (`{{unsubscribeUrl}}`) and RFC 8058 one-click headers. */
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

/** Options of `createTemplateRenderer`. */
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

/** A rendered template: subject, bodies, headers and the locale used. */
export interface RenderedTemplate extends RenderedEmail {
  subject: string
  /** Absent for a text-only template. */
  html?: string
  text: string
  /** The locale the template was found in. */
  locale: string
}

/** What a render knows besides the data. */
export interface TemplateRenderContext extends RenderContext {
  /**
   * The data the job shares with the other jobs of its batch (already merged into `data`), as one
   * object that does not change: what `data` has besides it is the recipient's own, and the rest of
   * the page is rendered once per batch. The worker passes it for batch jobs.
   */
  shared?: Record<string, unknown>
}

/** What `createTemplateRenderer` returns; a worker takes it as `templates`. */
export interface TemplateRenderer extends TemplateRendererLike {
  /** Renders a template; throws `MailstreamError` `E_TEMPLATE` (with `field`) when it cannot. */
  render(name: string, data?: Record<string, unknown>, context?: TemplateRenderContext): Promise<RenderedTemplate>
  /**
   * Throws what `render` would for a template name that does not exist or, with `requiredData`
   * (default true), for data that lacks a required variable or has a bad URL; renders nothing.
   * A queue given this renderer checks each job with it at enqueue.
   */
  check(
    name: string,
    data?: Record<string, unknown>,
    options?: { locale?: string | undefined; requiredData?: boolean },
  ): Promise<void>
  /**
   * Loads what rendering needs (html-to-text; juice too when the renderer has templates of its own or
   * `css`), compiles the built-in templates, renders a sample issue and starts the Markdown render thread, so that the first
   * email is as quick as the others. After it the thread is kept until `close()` (without it, an idle
   * thread ends after 10 s and the next issue's Markdown waits for a new one, about 350 ms).
   * Optional: without it, the first render does this.
   */
  warmup(): Promise<void>
  /** Ends the Markdown render thread, if one runs (it also ends by itself when idle, unless warmed up). */
  close(): Promise<void>
}
