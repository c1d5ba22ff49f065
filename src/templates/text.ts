import type { FormatCallback, HtmlToTextOptions } from 'html-to-text'

/**
 * How the plain-text part is derived from HTML: links kept as `text [url]`, images, the header and
 * the preheader left out. Plain data, so that the render thread converts Markdown with the same options.
 */
export const TEXT_OPTIONS = {
  wordwrap: 100,
  selectors: [
    // An image is its alt text; one without (a tracking pixel, a spacer) is nothing.
    { selector: 'img', format: 'imageAlt' },
    { selector: '.preheader', format: 'skip' },
    { selector: '.header', format: 'skip' },
    { selector: 'a', options: { hideLinkHrefIfSameAsText: true } },
    // Email layouts are tables for layout, not data: read them as blocks (faster, and no grid).
    { selector: 'table', format: 'block' },
    { selector: 'tbody', format: 'block' },
    { selector: 'tr', format: 'block' },
    { selector: 'td', format: 'block' },
    { selector: 'th', format: 'block' },
    // A table written in Markdown is data: one line per row, its cells separated by ' | '.
    { selector: 'table.markdown-table', format: 'tableRows' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
  ],
} satisfies HtmlToTextOptions

/**
 * The formatters `TEXT_OPTIONS` names. The render thread has the same two, written in its source
 * (functions cannot be passed to a thread): the plain text of Markdown is the same on both sides.
 */
export const TEXT_FORMATTERS: Record<'imageAlt' | 'tableRows', FormatCallback> = {
  imageAlt(elem, _walk, builder) {
    const alt = (elem as { attribs?: Record<string, string> }).attribs?.alt?.trim()
    if (alt) builder.addInline(alt)
  },
  tableRows(elem, walk, builder) {
    builder.openTable()
    const visit = (node: DomNode) => {
      if (node.type !== 'tag') return
      if (node.name === 'thead' || node.name === 'tbody' || node.name === 'tfoot') node.children?.forEach(visit)
      if (node.name !== 'tr') return
      builder.openTableRow()
      for (const cell of node.children ?? []) {
        if (cell.type !== 'tag' || (cell.name !== 'td' && cell.name !== 'th')) continue
        builder.openTableCell({ maxColumnWidth: CELL_WIDTH })
        walk(cell.children as never, builder)
        builder.closeTableCell()
      }
      builder.closeTableRow()
    }
    ;((elem as DomNode).children ?? []).forEach(visit)
    builder.closeTable({ tableToString: rowsToText, leadingLineBreaks: 2, trailingLineBreaks: 2 })
  },
}

interface DomNode {
  type: string
  name?: string
  children?: DomNode[]
}

/** Wide enough that a cell is one line: rows are joined, not laid out as a grid. */
const CELL_WIDTH = 10_000

const rowsToText = (rows: { text: string }[][]) =>
  rows.map((cells) => cells.map((cell) => cell.text.replace(/\s*\n\s*/g, ' ').trim()).join(' | ')).join('\n')

/**
 * A rendered Markdown variable: its HTML (`<div class="markdown">...</div>`), that div's plain text,
 * and the line breaks html-to-text puts before and after it.
 */
export interface RenderedMarkdown {
  html: string
  text: string
  leadingLineBreaks: number
  trailingLineBreaks: number
}

const PLACEHOLDER = 'data-mailstream-markdown'

/** Stands for the Markdown variable `index` in the HTML the plain-text part is derived from. */
export const markdownPlaceholder = (index: number) => `<div ${PLACEHOLDER}="${index}"></div>`

/**
 * The plain-text part of a page whose Markdown variables are placeholders. The Markdown's text was
 * derived once, off the main thread; here only the page around it is parsed, and the Markdown's
 * text goes in where its div would have been, with the same line breaks around it.
 */
export function createPageText(compile: typeof import('html-to-text').compile, wrap = true) {
  let parts: readonly RenderedMarkdown[] = []
  const nonce = String(Math.random()).slice(2, 10)
  const token = (index: number) => `\u0000${nonce}-${index}\u0000`
  const tokenLine = (index: number) => new RegExp(`^(.*?)${token(index)}`, 'gm')
  const markdownPart: FormatCallback = (elem, walk, builder) => {
    const index = Number((elem as { attribs?: Record<string, string> }).attribs?.[PLACEHOLDER])
    const part = parts[index]
    if (!part) {
      // A div like this that the renderer did not put there is a div.
      builder.openBlock({ leadingLineBreaks: 1 })
      walk(elem.children, builder)
      builder.closeBlock({ trailingLineBreaks: 1 })
      return
    }
    builder.openBlock({ leadingLineBreaks: part.leadingLineBreaks })
    builder.addLiteral(part.text === '' ? '' : token(index))
    builder.closeBlock({ trailingLineBreaks: part.trailingLineBreaks })
  }
  const convert = compile({
    ...TEXT_OPTIONS,
    ...(!wrap && { wordwrap: false }),
    formatters: { ...TEXT_FORMATTERS, markdownPart },
    selectors: [...TEXT_OPTIONS.selectors, { selector: `div[${PLACEHOLDER}]`, format: 'markdownPart' }],
  })
  return (html: string, markdown: readonly RenderedMarkdown[]): string => {
    parts = markdown
    let text: string
    try {
      text = convert(html)
    } finally {
      parts = []
    }
    markdown.forEach((part, index) => {
      if (part.text === '') return
      text = text.replace(tokenLine(index), (_line, prefix: string) => {
        if (prefix === '') return part.text
        // Inside a list or quote of the layout: its later lines are indented or quoted like the first.
        const continuation = prefix.replace(/[^\s>]/g, ' ')
        return prefix + part.text.split('\n').join(`\n${continuation}`)
      })
    })
    return text
  }
}
