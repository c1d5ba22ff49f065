import type sanitizeHtml from 'sanitize-html'

/**
 * What survives from Markdown (and HTML written inside it): formatting, links, images and
 * tables. Scripts, styles, frames, forms, event handlers and every URL scheme but http(s) and
 * mailto (so no javascript: or data:) are removed.
 */
const SANITIZE: sanitizeHtml.IOptions = {
  allowedTags: [
    'h1',
    'h2',
    'h3',
    'h4',
    'h5',
    'h6',
    'p',
    'br',
    'hr',
    'blockquote',
    'pre',
    'code',
    'ul',
    'ol',
    'li',
    'strong',
    'em',
    'b',
    'i',
    'u',
    's',
    'del',
    'sup',
    'sub',
    'a',
    'img',
    'table',
    'thead',
    'tbody',
    'tr',
    'th',
    'td',
  ],
  allowedAttributes: {
    a: ['href', 'title'],
    img: ['src', 'alt', 'title', 'width', 'height'],
    th: ['align'],
    td: ['align'],
    ol: ['start'],
  },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['http', 'https'] },
  allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'discard',
}

let engine: Promise<(markdown: string, css: string) => string> | undefined

/** marked, sanitize-html and juice are loaded on first use: importing mailstream stays light. */
function loadEngine(): Promise<(markdown: string, css: string) => string> {
  engine ??= Promise.all([import('marked'), import('sanitize-html'), import('juice')]).then(
    ([{ Marked }, { default: sanitize }, { default: juice }]) => {
      const marked = new Marked({ gfm: true, breaks: false, async: false })
      return (markdown, css) => {
        const html = sanitize(marked.parse(markdown) as string, SANITIZE)
        return juice(`<div class="markdown">${html}</div>`, {
          extraCss: css,
          applyStyleTags: false,
          removeStyleTags: true,
        })
      }
    },
  )
  return engine
}

/** Markdown to sanitised HTML, with `css` inlined into it (mail clients drop `<style>`). */
export async function renderMarkdown(markdown: string, css: string): Promise<string> {
  return (await loadEngine())(markdown, css)
}

/** A small least-recently-used cache. */
export function createLru<V>(limit: number) {
  const entries = new Map<string, V>()
  return {
    get(key: string): V | undefined {
      const value = entries.get(key)
      if (value !== undefined) {
        entries.delete(key)
        entries.set(key, value)
      }
      return value
    },
    set(key: string, value: V): void {
      entries.delete(key)
      entries.set(key, value)
      if (entries.size > limit) entries.delete(entries.keys().next().value as string)
    },
    delete(key: string): void {
      entries.delete(key)
    },
    get size() {
      return entries.size
    },
  }
}
