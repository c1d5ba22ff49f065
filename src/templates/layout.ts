import {
  BUILTIN_LAYOUT,
  BUILTIN_PREHEADERS,
  type BuiltInTemplateName,
  LAYOUT_STRINGS,
  MARKDOWN_CSS,
  PREHEADER_FILLER,
  THEME_DEFAULTS,
} from './builtin/index.js'
import type { TemplateDefaults } from './types.js'

const STATIC_RE = /\[\[(\w+)\]\]/g

/** Fills the `[[key]]` slots of the built-in layout and CSS: once per template, not per render. */
const fillStatic = (source: string, values: Record<string, string>) =>
  source.replace(STATIC_RE, (tag, key: string) => values[key] ?? tag)

export interface LayoutOptions {
  /** The layout for user templates, or false for none. Default: the built-in layout. */
  layout?: string | false | undefined
  /** The theme colours are taken from here. */
  defaults?: TemplateDefaults | undefined
  /** Extra CSS, appended to the Markdown CSS. */
  css?: string | undefined
}

/** Where a template body is wrapped: its locale, whether it is built in, and its own `layout` flag. */
export interface WrapTarget {
  /** The template's name: a built-in one may have a preview line of its own. */
  name: string
  locale: string
  builtin: boolean
  layout?: boolean | undefined
}

export interface Layout {
  /** The CSS inlined into rendered Markdown, in the theme's colours. */
  markdownCss: string
  /** A template body placed in its layout, the layout's theme and words filled in. */
  wrap(body: string, target: WrapTarget): string
  /** Fills the theme's colours into a built-in template composed by `composeBuiltin` (and CSS-inlined). */
  fillTheme(html: string): string
}

/**
 * The hidden preview line: `preheader` from the data, else the template's own default (or nothing),
 * then the filler that keeps inbox previews from running on into the page.
 */
function preheaderSlot(fallback: string | undefined): string {
  const line = '<span class="preheader">{{preheader}}' + PREHEADER_FILLER + '</span>'
  if (fallback === undefined) return `{{#preheader}}${line}{{/preheader}}`
  return (
    `{{#preheader}}${line}{{/preheader}}` +
    `{{^preheader}}<span class="preheader">${fallback}${PREHEADER_FILLER}</span>{{/preheader}}`
  )
}

/** The words of the built-in layout for a locale: its language, else English. */
const stringsFor = (locale: string) =>
  LAYOUT_STRINGS[locale.split('-')[0] as string] ?? (LAYOUT_STRINGS.en as Record<string, string>)

/**
 * A built-in template's body in the built-in layout, its words and preview line filled in and its
 * theme left as `[[key]]` slots: what is CSS-inlined at build time (the slots are kept by juice).
 */
export function composeBuiltin(body: string, name: string, locale: string): string {
  const fallback = BUILTIN_PREHEADERS[name as BuiltInTemplateName]
  const values = { ...stringsFor(locale), preheader: preheaderSlot(fallback) }
  return fillStatic(BUILTIN_LAYOUT, values).replace('{{{content}}}', () => body)
}

/** The theme and the layout templates are placed in; built-in templates always use the built-in layout. */
export function createLayout(options: LayoutOptions): Layout {
  const { brandColor, textColor, backgroundColor } = options.defaults ?? {}
  const theme: Record<string, string> = {
    ...THEME_DEFAULTS,
    ...(brandColor !== undefined && { brandColor }),
    ...(textColor !== undefined && { textColor }),
    ...(backgroundColor !== undefined && { backgroundColor }),
  }
  return {
    markdownCss: fillStatic(MARKDOWN_CSS, theme) + (options.css ?? ''),
    wrap(body, target) {
      const layout =
        target.layout === false ? false : target.builtin ? BUILTIN_LAYOUT : (options.layout ?? BUILTIN_LAYOUT)
      if (layout === false) return body
      const strings = stringsFor(target.locale)
      const fallback = target.builtin ? BUILTIN_PREHEADERS[target.name as BuiltInTemplateName] : undefined
      const values = { ...theme, ...strings, preheader: preheaderSlot(fallback) }
      return fillStatic(layout, layout === BUILTIN_LAYOUT ? values : {}).replace('{{{content}}}', () => body)
    },
    fillTheme: (html) => fillStatic(html, theme),
  }
}
