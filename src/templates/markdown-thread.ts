/**
 * The render thread, as CommonJS source for `new Worker(source, { eval: true })`: it runs the same
 * way from the ESM and CJS builds, from the sources under vitest or tsx, and under jest's VM. The
 * main thread resolves the module paths and passes them in `workerData`.
 *
 * In: `{ markdown, css }`. Out: `{ ready: true }` once loaded, then for each message either
 * `{ html, text, leadingLineBreaks, trailingLineBreaks }` or `{ failure }` (why it cannot be rendered).
 */
export const THREAD_SOURCE = `
'use strict'
// CommonJS as a rule; should a flag make eval'd code ESM, require comes from createRequire.
const load = typeof require === 'function' ? require : process.getBuiltinModule('node:module').createRequire(process.execPath)
const { parentPort, workerData } = load('node:worker_threads')
const { paths, textOptions, maxDepth, imageWidth } = workerData
const { Marked } = load(paths.marked)
const sanitize = load(paths.sanitizeHtml)
const juice = load(paths.juice)
const { compile } = load(paths.htmlToText)

const marked = new Marked({ gfm: true, breaks: false, async: false })

// Outlook's Word engine ignores max-width: every image gets a width attribute within the content
// width (its own, when smaller). No height: with max-width: 100% it would stretch a shrunk image.
function fitImage(tagName, attribs) {
  const { width, height, ...rest } = attribs
  const declared = /^\\s*\\d+(?:px)?\\s*$/.test(width || '') ? Number.parseInt(width, 10) : 0
  return { tagName, attribs: { ...rest, width: String(declared > 0 ? Math.min(declared, imageWidth) : imageWidth) } }
}
// Marks a Markdown table as data for the plain-text part (the layout's tables are read as blocks).
const dataTable = (tagName, attribs) => ({ tagName, attribs: { ...attribs, class: 'markdown-table' } })
const sanitizeOptions = { ...workerData.sanitizeOptions, transformTags: { img: fitImage, table: dataTable } }

// The formatters of TEXT_FORMATTERS in text.ts, the same code: Markdown's plain text matches the page's.
function imageAlt(elem, walk, builder) {
  const alt = elem.attribs && elem.attribs.alt ? elem.attribs.alt.trim() : ''
  if (alt) builder.addInline(alt)
}
function tableRows(elem, walk, builder) {
  builder.openTable()
  const visit = (node) => {
    if (node.type !== 'tag') return
    if (node.name === 'thead' || node.name === 'tbody' || node.name === 'tfoot') (node.children || []).forEach(visit)
    if (node.name !== 'tr') return
    builder.openTableRow()
    for (const cell of node.children || []) {
      if (cell.type !== 'tag' || (cell.name !== 'td' && cell.name !== 'th')) continue
      builder.openTableCell({ maxColumnWidth: 10000 })
      walk(cell.children, builder)
      builder.closeTableCell()
    }
    builder.closeTableRow()
  }
  ;(elem.children || []).forEach(visit)
  const rowsToText = (rows) =>
    rows.map((cells) => cells.map((cell) => cell.text.replace(/\\s*\\n\\s*/g, ' ').trim()).join(' | ')).join('\\n')
  builder.closeTable({ tableToString: rowsToText, leadingLineBreaks: 2, trailingLineBreaks: 2 })
}
const VOID = new Set(['br', 'hr', 'img', 'wbr'])
const TAG = /<(\\/?)([A-Za-z][A-Za-z0-9]*)[^>]*>/g

// Sanitised HTML is well formed and escapes < and > in text and attributes, so tags can be counted.
function depthOf(html) {
  let depth = 0
  let deepest = 0
  for (const [, closing, name] of html.matchAll(TAG)) {
    if (VOID.has(name.toLowerCase())) continue
    if (closing) depth--
    else if (++depth > deepest) deepest = depth
  }
  return deepest
}

// The text of the Markdown's div, and the line breaks html-to-text would put around it in a page.
let captured
const toText = compile({
  ...textOptions,
  formatters: {
    imageAlt,
    tableRows,
    markdownRoot(elem, walk, builder) {
      builder.openBlock({ leadingLineBreaks: 1 })
      const block = builder._stackItem
      walk(elem.children, builder)
      builder.closeBlock({
        trailingLineBreaks: 1,
        blockTransform: (text) => {
          captured.text = text
          return text
        },
      })
      captured.leadingLineBreaks = block.leadingLineBreaks
      captured.trailingLineBreaks = Math.max(block.stashedLineBreaks, 1)
    },
  },
  selectors: [...textOptions.selectors, { selector: 'div.markdown', format: 'markdownRoot' }],
})

function render(markdown, css) {
  const html = sanitize(marked.parse(markdown), sanitizeOptions)
  const depth = depthOf(html)
  if (depth > maxDepth) return { failure: 'Markdown nests ' + depth + ' elements deep (at most ' + maxDepth + ')' }
  const styled = juice('<div class="markdown">' + html + '</div>', {
    extraCss: css,
    applyStyleTags: false,
    removeStyleTags: true,
  })
  captured = { text: '', leadingLineBreaks: 1, trailingLineBreaks: 1 }
  toText(styled)
  return { html: styled, ...captured }
}

parentPort.on('message', ({ markdown, css }) => {
  let reply
  try {
    reply = render(markdown, css)
  } catch (error) {
    const message = String((error && error.message) || error).split('\\n')[0]
    reply = {
      failure:
        error instanceof RangeError && /call stack/i.test(message)
          ? 'Markdown nests too deep to render (' + message + ')'
          : 'Markdown cannot be rendered: ' + message,
    }
  }
  parentPort.postMessage(reply)
})
parentPort.postMessage({ ready: true })
`
