import Mustache from 'mustache'

/** How a template's HTML uses a variable: in plain `{{x}}` slots, as a section, or some other way. */
export interface VariableUse {
  plain: boolean
  section: boolean
  /** Raw `{{{x}}}`, a dotted path `{{x.y}}`, or a section whose inner tags read the value itself. */
  other: boolean
}

export interface TemplateUses {
  /** By top-level name. */
  names: Map<string, VariableUse>
  /** A partial tag was left for render time: what it reads is not known. */
  partials: boolean
}

type Token = [string, string, number, number, Token[]?, number?]

// Inside a section over a string, these read the string itself (its length, its characters).
const READS_VALUE = (name: string) => name === '.' || name === 'length' || /^\d/.test(name)

/** What the HTML of a template reads, from its parsed Mustache tags (cached by Mustache). */
export function templateUses(html: string): TemplateUses {
  const names = new Map<string, VariableUse>()
  let partials = false
  const use = (name: string) => {
    let entry = names.get(name)
    if (!entry) {
      entry = { plain: false, section: false, other: false }
      names.set(name, entry)
    }
    return entry
  }
  const walk = (tokens: Token[], sections: readonly string[]) => {
    for (const token of tokens) {
      const [type, name] = token
      if (type === 'text' || type === '!' || type === '=') continue
      if (type === '>') {
        partials = true
        continue
      }
      if (READS_VALUE(name)) for (const section of sections) use(section).other = true
      if (name === '.') continue
      const [head] = name.split('.') as [string]
      const dotted = head !== name
      if (type === 'name' && !dotted) use(head).plain = true
      else if ((type === '#' || type === '^') && !dotted) use(head).section = true
      else use(head).other = true
      if (type === '#' || type === '^') walk(token[4] ?? [], [...sections, head])
    }
  }
  walk(Mustache.parse(html) as unknown as Token[], [])
  return { names, partials }
}

/** Where a per-recipient value lands in the HTML, when it can be put in as text. */
export type SlotContext = 'text' | 'url'

const TAG_RE = /<!--[\s\S]*?-->|<(\/?)([a-zA-Z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>|[^<]+|</g
const ATTRIBUTE_RE = /([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g
// Text in these is not plain running text: kept as it is, raw, or compared with the link (html-to-text).
const SPECIAL_TEXT = new Set(['a', 'pre', 'textarea', 'style', 'script', 'noscript', 'xmp', 'plaintext', 'option'])

/**
 * The context of every sentinel in a rendered page, in order of appearance, or undefined when one
 * sits where the plain-text part would not be the value's text put in: inside a link's text, `<pre>`,
 * CSS, a script, a tag outside an `href`/`src` value. A link with a sentinel in its `href` must not
 * show a URL as its text (html-to-text hides a link whose text equals its address).
 */
export function slotContexts(html: string, sentinel: RegExp): { index: number; context: SlotContext }[] | undefined {
  const found: { index: number; context: SlotContext }[] = []
  const open = new Map<string, number>()
  let linkWithSlot = false
  for (const match of html.matchAll(TAG_RE)) {
    const [token, closing, tag] = match
    const slots = [...token.matchAll(sentinel)].map((slot) => Number(slot[1]))
    if (tag === undefined) {
      if (token.startsWith('<!--')) continue
      if (linkWithSlot && token.includes('://')) return undefined
      if (slots.length === 0) continue
      for (const name of SPECIAL_TEXT) if ((open.get(name) ?? 0) > 0) return undefined
      for (const index of slots) found.push({ index, context: 'text' })
      continue
    }
    const name = tag.toLowerCase()
    if (!token.endsWith('/>')) open.set(name, Math.max(0, (open.get(name) ?? 0) + (closing ? -1 : 1)))
    if (name === 'a' && closing) linkWithSlot = false
    if (slots.length === 0) continue
    if (closing) return undefined
    const attributes = [...(match[3] ?? '').matchAll(ATTRIBUTE_RE)]
    let inValues = 0
    for (const [, attribute, doubleQuoted, singleQuoted] of attributes) {
      const value = doubleQuoted ?? singleQuoted
      const inValue = value === undefined ? [] : [...value.matchAll(sentinel)]
      if (inValue.length === 0) continue
      const lower = (attribute as string).toLowerCase()
      if (lower !== 'href' && lower !== 'src') return undefined
      if (name === 'a' && lower === 'href') linkWithSlot = true
      for (const slot of inValue) found.push({ index: Number(slot[1]), context: 'url' })
      inValues += inValue.length
    }
    // A sentinel in a tag name, an attribute name or an unquoted value.
    if (inValues !== slots.length) return undefined
  }
  return found
}

/** html-to-text's whitespace: what separates words in the plain-text part. */
export const TEXT_WHITESPACE = /[ \t\r\n\f\u200b]+/

/** Where wrapping stands: the lines done (each with its line break), the line begun, the room left on it. */
export interface WrapState {
  done: string
  line: string
  available: number
}

/** A line of `width` columns to begin with. */
export const wrapStart = (width: number): WrapState => ({ done: '', line: '', available: width })

/**
 * More words (none empty) wrapped on from `state`, as html-to-text's inline builder does (`width`
 * columns, a word longer than a line on a line of its own, never split). `state` is left as it is.
 */
export function wrapMore(state: WrapState, words: readonly string[], width: number): WrapState {
  let { done, line, available } = state
  for (const word of words) {
    if (available <= 0 && line !== '') {
      done += `${line}\n`
      line = ''
      available = width
    }
    const cost = word.length + (line === '' ? 0 : 1)
    if (cost <= available) {
      line = line === '' ? word : `${line} ${word}`
      available -= cost
      continue
    }
    if (line !== '') done += `${line}\n`
    line = word
    available = width - word.length
  }
  return { done, line, available }
}

/** Words (none empty) wrapped into lines of `width` columns, as html-to-text's inline builder does. */
export function wrapWords(words: readonly string[], width: number): string {
  const { done, line } = wrapMore(wrapStart(width), words, width)
  return done + line
}
