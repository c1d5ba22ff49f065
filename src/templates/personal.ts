import { createHash, randomBytes } from 'node:crypto'
import { escapeHtml } from '../html.js'
import type { CompiledTemplate, Engines, MarkdownCache } from './compile.js'
import { createLru } from './markdown.js'
import { SAFE_URL_RE } from './options.js'
import {
  type SlotContext,
  slotContexts,
  TEXT_WHITESPACE,
  templateUses,
  type WrapState,
  wrapMore,
  wrapStart,
  wrapWords,
} from './personal-scan.js'
import { renderCompiled, renderMarkdownFields } from './render.js'
import { TEXT_OPTIONS } from './text.js'
import type { RenderedTemplate } from './types.js'

/** A page rendered once with sentinels for the per-recipient values, cut where they go. */
interface Skeleton {
  /** The recipients' variables, in sentinel order. */
  keys: string[]
  /** HTML around the values: `html[0] value[slots[0]] html[1] ...`. */
  html: string[]
  htmlSlots: { key: number; context: SlotContext }[]
  /** `htmlSlots`' keys, in order. */
  htmlKeys: number[]
  /** Per variable, whether it sits in a URL attribute (then it must be an http(s) URL). */
  inUrl: boolean[]
  /** Plain text around the paragraphs that hold values; each paragraph is wrapped per recipient. */
  text: string[]
  paragraphs: Paragraph[]
}

/** A paragraph of the plain text that holds values: its words around them, single-spaced. */
interface Paragraph {
  parts: string[]
  keys: number[]
  /** The whole words before the first value, wrapped: the same for every recipient. */
  head: WrapState
  /** How many characters of the paragraph `head` stands for. */
  consumed: number
}

/** A paragraph cut at its sentinels, and its words before the first one wrapped once. */
function paragraphOf(words: string, sentinel: RegExp): Paragraph {
  const { parts, keys } = cut(words, sentinel)
  const before = (parts[0] as string).split(' ')
  // The last piece runs into the first value (a word like `[x0x`): it is wrapped with it.
  const whole = before.slice(0, -1)
  return {
    parts,
    keys,
    head: wrapMore(wrapStart(WIDTH), whole, WIDTH),
    consumed: (parts[0] as string).length - (before.at(-1) as string).length,
  }
}

/** A template's skeletons by shared data and kinds of values, and the one used last. */
interface SkeletonCache {
  lru: ReturnType<typeof createLru<Promise<Skeleton | typeof WHOLE>>>
  last: { key: string; entry: Promise<Skeleton | typeof WHOLE> } | undefined
}

/** Values put in for the sentinels: `undefined` where this recipient needs the whole render. */
type Values = readonly string[]

const WIDTH = TEXT_OPTIONS.wordwrap
// What HTML escaping changes: a value without these goes in as it is.
const ESCAPED = /[&<>"']/
// A value that is words separated by single spaces (no other html-to-text whitespace, none at its
// ends): put between the skeleton's words, the paragraph is already split and joined as it would be.
const SPACED = /^[ \t\r\n\f\u200b]|[ \t\r\n\f\u200b]$|[\t\r\n\f\u200b]| {2}/
// Characters whose handling by the HTML parser is not simply "kept": such a recipient is rendered whole.
const UNUSUAL = /[\u0000-\u0008\u000b\u000e-\u001f\u007f]/
const WHOLE = Symbol('whole')

/** Whether a value goes in through a sentinel (a non-empty text or number), and the others' class. */
function classOf(value: unknown): 'S' | string | undefined {
  if ((typeof value === 'string' && value !== '') || (typeof value === 'number' && value !== 0 && !Number.isNaN(value)))
    return 'S'
  if (value === undefined || value === null || value === '' || value === 0 || typeof value === 'boolean')
    return String(value) + typeof value
  if (typeof value === 'number') return 'NaN'
  return undefined
}

/** Cuts `source` at every sentinel: the pieces between, and which sentinel each cut was. */
function cut(source: string, sentinel: RegExp): { parts: string[]; keys: number[] } {
  const parts: string[] = []
  const keys: number[] = []
  let at = 0
  for (const match of source.matchAll(sentinel)) {
    parts.push(source.slice(at, match.index))
    keys.push(Number(match[1]))
    at = match.index + match[0].length
  }
  parts.push(source.slice(at))
  return { parts, keys }
}

const join = (parts: readonly string[], keys: readonly number[], values: (key: number) => string) => {
  let out = parts[0] as string
  for (let i = 0; i < keys.length; i++) out += values(keys[i] as number) + parts[i + 1]
  return out
}

/**
 * The plain text cut around the paragraphs that hold sentinels. The page's text is derived twice,
 * wrapped and not: an unwrapped line with a sentinel is a paragraph, found again in the wrapped text
 * as those words wrapped. Undefined when one is not (a list item or a quote, which are indented).
 */
function cutText(wrapped: string, lines: string, sentinel: RegExp): Pick<Skeleton, 'text' | 'paragraphs'> | undefined {
  const text: string[] = []
  const paragraphs: Skeleton['paragraphs'] = []
  let at = 0
  const holds = new RegExp(sentinel.source)
  for (const line of lines.split('\n')) {
    if (!holds.test(line)) continue
    const words = line.split(TEXT_WHITESPACE).filter((word) => word !== '')
    const expected = wrapWords(words, WIDTH)
    let index = wrapped.indexOf(expected, at)
    while (index !== -1) {
      const end = index + expected.length
      if ((index === 0 || wrapped[index - 1] === '\n') && (end === wrapped.length || wrapped[end] === '\n')) break
      index = wrapped.indexOf(expected, index + 1)
    }
    if (index === -1) return undefined
    text.push(wrapped.slice(at, index))
    paragraphs.push(paragraphOf(words.join(' '), sentinel))
    at = index + expected.length
  }
  text.push(wrapped.slice(at))
  return { text, paragraphs }
}

/** Whether a value can go into its slots as it is, and the value as text. */
function valueFor(value: unknown, inUrl: boolean): string | undefined {
  const text = String(value)
  if (UNUSUAL.test(text)) return undefined
  if (inUrl && !SAFE_URL_RE.test(text)) return undefined
  return text
}

/** The page for one recipient from the skeleton, or undefined when a value needs the whole render. */
function assemble(skeleton: Skeleton, values: Values): { html: string; text: string } | undefined {
  const escaped: string[] = []
  let simple = true
  for (const value of values) {
    escaped.push(ESCAPED.test(value) ? escapeHtml(value) : value)
    if (SPACED.test(value)) simple = false
  }
  const html = join(skeleton.html, skeleton.htmlKeys, (key) => escaped[key] as string)
  let text = skeleton.text[0] as string
  for (let i = 0; i < skeleton.paragraphs.length; i++) {
    const { parts, keys, head, consumed } = skeleton.paragraphs[i] as Paragraph
    const joined = join(parts, keys, (key) => values[key] as string)
    let paragraph: string
    if (simple) {
      // Already its words joined by single spaces (the parts are, and so are the values): the
      // words before the first value were wrapped once, the rest is wrapped on from there.
      if (joined.length <= WIDTH) paragraph = joined
      else {
        const { done, line } = wrapMore(head, joined.slice(consumed).split(' '), WIDTH)
        paragraph = done + line
      }
    } else {
      const words = joined.split(TEXT_WHITESPACE).filter((word) => word !== '')
      // A paragraph left empty is dropped by html-to-text, with its line breaks.
      if (words.length === 0) return undefined
      paragraph = wrapWords(words, WIDTH)
    }
    text += paragraph + skeleton.text[i + 1]
  }
  return { html, text }
}

export interface PersonalRenderOptions {
  partials: Record<string, string>
  markdown: MarkdownCache
  engines: () => Promise<Engines>
}

/** Which data of a render is the recipient's own, and a key for everything else. */
export interface RecipientSplit {
  /** Variables that differ per recipient. */
  keys: ReadonlySet<string>
  /** Stands for all the other data: equal keys mean equal data. */
  sharedKey: string
}

/** The skeleton against a whole render, with sample values that wrap, space and escape. */
async function passesProbe(
  options: PersonalRenderOptions,
  template: CompiledTemplate,
  view: Record<string, unknown>,
  skeleton: Skeleton,
) {
  const samples = skeleton.keys.map((_key, index) =>
    skeleton.inUrl[index]
      ? `https://probe.example/${'p'.repeat(90 + index)}?a=1&b=2&amp;c='3'`
      : ` Probe\t"<b>&amp;</b>'  ${'w\u00f6rd \ud55c\uad6d\uc5b4 \ud83d\ude00 '.repeat(9 + index)}{{x}} `,
  )
  const probeView: Record<string, unknown> = { ...view }
  skeleton.keys.forEach((key, index) => {
    probeView[key] = samples[index]
  })
  const whole = await renderPage(options, template, probeView)
  const fast = assemble(skeleton, samples)
  return fast !== undefined && fast.html === whole.html && fast.text === whole.text
}

const sharedKeys = new WeakMap<object, string>()

/** A key for a batch's shared data, computed once per object (batch data never changes). */
function sharedKeyOf(shared: object): string {
  let key = sharedKeys.get(shared)
  if (key === undefined) {
    key = createHash('sha256').update(JSON.stringify(shared)).digest('base64')
    sharedKeys.set(shared, key)
  }
  return key
}

/** A whole render of the page: its HTML and its text, wrapped or (`lines`) not. */
async function renderPage(
  options: PersonalRenderOptions,
  template: CompiledTemplate,
  view: Record<string, unknown>,
  mode?: 'lines',
) {
  const views = await renderMarkdownFields(template, { ...view }, options.markdown)
  const { pageText, pageLines } = await options.engines()
  const rendered = renderCompiled(template, views, options.partials, {
    pageText: mode === 'lines' ? pageLines : pageText,
  })
  return { html: rendered.html as string, text: rendered.text }
}

/**
 * Renders a page once per template, shared data and kind of recipient values, with a sentinel
 * (random per render) for each per-recipient value, and then puts each recipient's values in:
 * escaped in the HTML as Mustache escapes them, and in the plain text as html-to-text would give
 * them, paragraphs rewrapped. Before a skeleton is used, it is checked against a whole render
 * with long, spaced, hostile sample values; whatever fails is rendered whole, always.
 */
export function createPersonalRenderer(options: PersonalRenderOptions) {
  const skeletons = new WeakMap<CompiledTemplate, SkeletonCache>()
  const usesOf = new WeakMap<CompiledTemplate, ReturnType<typeof templateUses> & { list: string[] }>()

  function usesFor(template: CompiledTemplate) {
    let uses = usesOf.get(template)
    if (!uses) {
      const found = templateUses(template.html as string)
      uses = { ...found, list: [...found.names.keys()] }
      usesOf.set(template, uses)
    }
    return uses
  }

  async function build(
    template: CompiledTemplate,
    view: Record<string, unknown>,
    keys: readonly string[],
  ): Promise<Skeleton | typeof WHOLE> {
    const nonce = randomBytes(12).toString('hex')
    const sentinel = new RegExp(`x${nonce}(\\d+)x`, 'g')
    const skeletonView: Record<string, unknown> = { ...view }
    keys.forEach((key, index) => {
      skeletonView[key] = `x${nonce}${index}x`
    })
    const page = await renderPage(options, template, skeletonView)
    const contexts = slotContexts(page.html, sentinel)
    if (!contexts) return WHOLE
    const lines = await renderPage(options, template, skeletonView, 'lines')
    const text = cutText(page.text, lines.text, sentinel)
    if (!text) return WHOLE
    const htmlSlots = contexts.map(({ index, context }) => ({ key: index, context }))
    const skeleton: Skeleton = {
      keys: [...keys],
      html: cut(page.html, sentinel).parts,
      htmlSlots,
      htmlKeys: htmlSlots.map((slot) => slot.key),
      inUrl: keys.map((_key, index) => htmlSlots.some((slot) => slot.key === index && slot.context === 'url')),
      ...text,
    }
    return (await passesProbe(options, template, view, skeleton)) ? skeleton : WHOLE
  }

  return {
    sharedKeyOf,

    /**
     * A key for what a view gives the template's HTML besides `keys`: the values of the names it
     * reads. Undefined for data that is not JSON (then the render is done whole).
     */
    viewKeyOf(
      template: CompiledTemplate,
      view: Record<string, unknown>,
      keys: ReadonlySet<string>,
    ): string | undefined {
      if (template.html === undefined) return undefined
      const read: unknown[] = []
      for (const [name] of usesFor(template).names) if (!keys.has(name)) read.push(name, view[name])
      try {
        return createHash('sha256').update(JSON.stringify(read)).digest('base64')
      } catch {
        return undefined
      }
    },

    /**
     * The page for a view whose recipient's own variables are `split.keys`, or undefined when it
     * must be rendered whole (checked per template, per shared data and per recipient).
     */
    async render(
      template: CompiledTemplate,
      view: Record<string, unknown>,
      split: RecipientSplit,
    ): Promise<Pick<RenderedTemplate, 'html' | 'text'> | undefined> {
      if (template.html === undefined || template.text !== undefined) return undefined
      const uses = usesFor(template)
      if (uses.partials) return undefined
      const keys: string[] = []
      const classes: string[] = []
      for (const key of split.keys) {
        const use = uses.names.get(key)
        if (!use) continue
        if (use.other || template.markdown.includes(key)) return undefined
        const kind = classOf(view[key])
        if (kind === undefined) return undefined
        if (kind === 'S') keys.push(key)
        classes.push(`${key}=${kind}`)
      }
      for (const name of uses.list) if (typeof view[name] === 'function') return undefined
      let cache = skeletons.get(template)
      if (!cache) {
        cache = { lru: createLru(64), last: undefined }
        skeletons.set(template, cache)
      }
      const cacheKey = `${split.sharedKey}\u0000${(classes.length > 1 ? classes.sort() : classes).join('\u0000')}`
      // The recipients of a batch come one after the other: the last skeleton used is looked at first.
      let entry = cache.last?.key === cacheKey ? cache.last.entry : cache.lru.get(cacheKey)
      if (!entry) {
        // The first recipient's view stands for all: its own values are replaced by sentinels.
        const built = build(template, view, keys)
        const { lru } = cache
        entry = built
        lru.set(cacheKey, built)
        built.catch(() => {
          lru.delete(cacheKey)
          if (cache.last?.entry === built) cache.last = undefined
        })
      }
      if (cache.last?.entry !== entry) cache.last = { key: cacheKey, entry }
      const skeleton = await entry
      if (skeleton === WHOLE) return undefined
      const values: string[] = []
      for (let index = 0; index < skeleton.keys.length; index++) {
        const value = valueFor(view[skeleton.keys[index] as string], skeleton.inUrl[index] as boolean)
        if (value === undefined) return undefined
        values.push(value)
      }
      return assemble(skeleton, values)
    },
  }
}

export type PersonalRenderer = ReturnType<typeof createPersonalRenderer>
