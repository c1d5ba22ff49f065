// Plain text for the terminal. Widths are counted in terminal columns, not string length: a Korean
// syllable or a CJK ideograph takes two columns, a combining mark none.

type Cell = string | number | undefined | null

let graphemes: Intl.Segmenter | undefined

function segments(text: string): Iterable<string> {
  // Ascii needs no segmenter; most cells are ids, numbers and addresses.
  if (/^[\x20-\x7e]*$/.test(text)) return text
  graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' })
  return Array.from(graphemes.segment(text), (part) => part.segment)
}

// East Asian Wide (W) and Fullwidth (F) ranges of Unicode 15 (UAX #11), emoji aside.
const WIDE: [number, number][] = [
  [0x1100, 0x115f], // Hangul Jamo initial consonants
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x2e80, 0x303e], // CJK radicals, Kangxi, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, CJK compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo extended A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4],
  [0x17000, 0x18cff], // Tangut
  [0x1b000, 0x1b2ff], // Kana supplement and extensions, Nushu
  [0x1f200, 0x1f2ff], // enclosed ideographic supplement
  [0x20000, 0x2fffd], // CJK extensions B-F
  [0x30000, 0x3fffd], // CJK extension G and later
]

function isWide(codePoint: number): boolean {
  for (const [from, to] of WIDE) {
    if (codePoint < from) return false
    if (codePoint <= to) return true
  }
  return false
}

// Combining marks, format characters (zero-width joiner, ...) and Hangul medial and final Jamo.
const ZERO_WIDTH = /^(?:[\p{Mn}\p{Me}\p{Cf}]|[\u1160-\u11ff\ud7b0-\ud7ff])$/u
const EMOJI = /\p{Emoji_Presentation}|\p{Extended_Pictographic}\ufe0f/u

function graphemeWidth(grapheme: string): number {
  if (grapheme.length === 1 && grapheme >= ' ' && grapheme <= '~') return 1
  if (EMOJI.test(grapheme)) return 2
  for (const character of grapheme) {
    if (ZERO_WIDTH.test(character)) continue
    return isWide(character.codePointAt(0) as number) ? 2 : 1
  }
  return 0
}

/**
 * The columns `text` takes in a terminal: 2 for each East Asian Wide or Fullwidth character
 * (Hangul, kana, CJK ideographs, fullwidth forms) and emoji, 0 for combining marks, 1 otherwise.
 */
export function displayWidth(text: string): number {
  let width = 0
  for (const grapheme of segments(text)) width += graphemeWidth(grapheme)
  return width
}

/** `text` cut to at most `columns` terminal columns, with `…` where it was cut. */
export function truncate(text: string, columns: number): string {
  if (displayWidth(text) <= columns) return text
  let kept = ''
  let width = 0
  for (const grapheme of segments(text)) {
    const next = graphemeWidth(grapheme)
    if (width + next > columns - 1) break
    kept += grapheme
    width += next
  }
  return `${kept}…`
}

/** `text` padded with spaces to `columns` terminal columns. */
export function padEnd(text: string, columns: number): string {
  return text + ' '.repeat(Math.max(0, columns - displayWidth(text)))
}

/** Plain-text tables for the terminal: a header row, columns padded to their widest cell. */
export function table(headers: string[], rows: Cell[][]): string {
  const cells = rows.map((row) => headers.map((_, column) => clean(row[column])))
  const widths = headers.map((header, column) =>
    Math.max(displayWidth(header), ...cells.map((row) => displayWidth(row[column] ?? ''))),
  )
  const line = (row: string[]) =>
    row
      .map((cell, column) => padEnd(cell, widths[column] ?? 0))
      .join('  ')
      .trimEnd()
  return [line(headers), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line)].join('\n')
}

/** `key  value` lines, keys aligned. */
export function pairs(entries: [string, Cell][]): string {
  const width = Math.max(...entries.map(([key]) => displayWidth(key)))
  return entries.map(([key, value]) => `${padEnd(key, width)}  ${clean(value)}`).join('\n')
}

/** One line, no control characters: values come from Redis and may hold anything. */
function clean(value: Cell): string {
  if (value === undefined || value === null || value === '') return '-'
  return String(value).replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ')
}

export function formatTime(epochMs: number | undefined): string {
  return epochMs ? new Date(epochMs).toISOString() : '-'
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}
