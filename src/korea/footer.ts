// What an advertising email's body must show (정보통신망법 제50조 제4항, 시행령 제61조 제3항):
// the sender's name, email, phone and address, and a free, easy way to refuse. Pure.
import type { AdvertisingSender } from './types.js'

/** An item the footer check looks for. */
export type FooterItem = 'name' | 'email' | 'phone' | 'address' | 'unsubscribe'

/** What is missing from each part of a rendered advertising email; empty lists when nothing is. */
export interface AdvertisingFooterCheck {
  ok: boolean
  html: FooterItem[]
  text: FooterItem[]
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', middot: '·' }

/** Words that name a refusal link in the built-in footer and in most hand-written ones. */
const REFUSAL_WORDS = /수신\s*거부|수신\s*거절|구독\s*해지|unsubscribe|opt[\s-]?out/i

const decode = (text: string) =>
  text.replace(/&(?:#(\d{1,7})|#x([0-9a-f]{1,6})|([a-z]{2,8}));/gi, (entity, dec, hex, name) => {
    if (dec !== undefined || hex !== undefined) {
      const code = Number.parseInt(dec ?? hex, dec !== undefined ? 10 : 16)
      return code <= 0x10ffff ? String.fromCodePoint(code) : entity
    }
    return ENTITIES[(name as string).toLowerCase()] ?? entity
  })

/** Case and runs of spaces (and invisible characters) do not matter: `02-123  4567` is `02-123 4567`. */
const squash = (text: string) =>
  text
    .replace(/[\u200B-\u200D\u2060\uFEFF]/g, '')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase()

/**
 * The text a reader sees of an HTML body: no head, style, script, comments, or elements hidden
 * with `display:none` (a preheader), and no attribute, so that an image's `alt` does not count.
 */
export function visibleText(html: string): string {
  const shown = html
    .replace(/<!--[\s\S]*?-->/g, ' ')
    .replace(/<(head|style|script|title|noscript|template)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    // One level of hidden element is enough for what a footer could hide in; nested ones stay shown.
    .replace(/<(\w+)\b[^>]*\bstyle\s*=\s*["'][^"']*display\s*:\s*none[^"']*["'][^>]*>[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
  return squash(decode(shown))
}

/** The hrefs of the anchors of an HTML body, each with the visible text of its link. */
function links(html: string): { href: string; text: string }[] {
  const found: { href: string; text: string }[] = []
  const re = /<a\b([^>]*)>([\s\S]*?)<\/a\s*>/gi
  for (let match = re.exec(html); match !== null; match = re.exec(html)) {
    const href = /\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/i.exec(match[1] ?? '')
    if (!href) continue
    found.push({ href: decode(href[1] ?? href[2] ?? href[3] ?? '').trim(), text: visibleText(match[2] ?? '') })
  }
  return found
}

const URL_RE = /\b(?:https?:\/\/|mailto:)\S+/i

/** The sender's items that a visible text lacks. */
function missingSender(visible: string, sender: AdvertisingSender): FooterItem[] {
  const missing: FooterItem[] = []
  for (const item of ['name', 'email', 'phone', 'address'] as const) {
    if (!visible.includes(squash(sender[item]))) missing.push(item)
  }
  return missing
}

/**
 * Checks a rendered advertising email: the sender's name, email, phone and address in the visible
 * text of the HTML part and in the text part, and a way to refuse in both. With `unsubscribeUrl`
 * (the signed one-click link), the HTML must link to it and the text must show it; without, the
 * HTML needs a link named as a refusal (수신거부, unsubscribe, ...) and the text such a word and a
 * URL. An image-only body, or one that shows the items only in `alt` text, fails. A message
 * without an HTML part is checked on its text alone; one without a text part, on its HTML alone.
 */
export function checkAdvertisingFooter(
  body: { html?: string | undefined; text?: string | undefined },
  sender: AdvertisingSender,
  unsubscribeUrl?: string,
): AdvertisingFooterCheck {
  const html: FooterItem[] = []
  const text: FooterItem[] = []
  if (body.html === undefined && (body.text === undefined || body.text === '')) {
    const all: FooterItem[] = ['name', 'email', 'phone', 'address', 'unsubscribe']
    return { ok: false, html: all, text: [...all] }
  }
  if (body.html !== undefined) {
    html.push(...missingSender(visibleText(body.html), sender))
    const anchors = links(body.html)
    const refusal =
      unsubscribeUrl !== undefined
        ? anchors.some((link) => link.href === unsubscribeUrl && link.text !== '')
        : anchors.some((link) => URL_RE.test(link.href) && REFUSAL_WORDS.test(link.text))
    if (!refusal) html.push('unsubscribe')
  }
  if (body.text !== undefined && (body.text !== '' || body.html === undefined)) {
    const shown = squash(body.text)
    text.push(...missingSender(shown, sender))
    const refusal =
      unsubscribeUrl !== undefined
        ? body.text.includes(unsubscribeUrl)
        : REFUSAL_WORDS.test(body.text) && URL_RE.test(body.text)
    if (!refusal) text.push('unsubscribe')
  }
  return { ok: html.length === 0 && text.length === 0, html, text }
}

/** One line for a dead letter or an error: what is missing, part by part. */
export function describeFooterCheck(check: AdvertisingFooterCheck): string {
  const parts: string[] = []
  if (check.html.length) parts.push(`the HTML part lacks ${check.html.join(', ')}`)
  if (check.text.length) parts.push(`the text part lacks ${check.text.join(', ')}`)
  return `an advertising email shows the sender's name, email, phone and address and a way to refuse (정보통신망법 제50조 제4항): ${parts.join('; ')}`
}
