import { BUILTIN_LAYOUT, LAYOUT_STRINGS, MARKDOWN_CSS, THEME_DEFAULTS } from './builtin/index.js'
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
  locale: string
  builtin: boolean
  layout?: boolean | undefined
}

export interface Layout {
  /** The CSS inlined into rendered Markdown, in the theme's colours. */
  markdownCss: string
  /** A template body placed in its layout, the layout's theme and words filled in. */
  wrap(body: string, target: WrapTarget): string
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
      const strings =
        LAYOUT_STRINGS[target.locale.split('-')[0] as string] ?? (LAYOUT_STRINGS.en as Record<string, string>)
      return fillStatic(layout, layout === BUILTIN_LAYOUT ? { ...theme, ...strings } : {}).replace(
        '{{{content}}}',
        () => body,
      )
    },
  }
}
