// The `variants` and `test` options of `enqueueBatch`, checked once at the boundary.
import { MailstreamError } from '../errors.js'
import type { AbMetric } from './decision.js'

/** One variant of an A/B test: what it changes of the batch's shared fields. */
export interface BatchVariant {
  subject?: string
  template?: string
  html?: string
  text?: string
  /** Merged over the batch's shared `data` (and under each recipient's own). */
  data?: Record<string, unknown>
}

export interface BatchTestOptions {
  /** The share of the audience (0-1, exclusive) that gets the variants, in equal parts. */
  share: number
  /** How long after the batch starts sending the winner is chosen: ms, or `'90m'`, `'2h'`, `'1d'`... */
  decideAfter: number | string
  /** What decides: unique clicks or unique human opens per sent message. */
  metric: AbMetric
  /** Sends a variant needs to be compared; with none reaching it, the first variant wins. Default 100. */
  minSample?: number
}

/** A test as checked: the durations in ms, the defaults filled in. */
export interface AbTestSpec {
  variants: BatchVariant[]
  share: number
  decideAfterMs: number
  metric: AbMetric
  minSample: number
}

const VARIANT_FIELDS = new Set(['subject', 'template', 'html', 'text', 'data'])
const TEST_FIELDS = new Set(['share', 'decideAfter', 'metric', 'minSample'])
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/

function invalid(field: string, message: string): MailstreamError {
  return new MailstreamError('E_VALIDATION', `${field}: ${message}`, { field })
}

/** `'2h'`, `'90m'`, `'45s'`, `'1d'`, `'500ms'` or a number of ms; undefined when it is none of these. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 ? value : undefined
  if (typeof value !== 'string') return undefined
  const match = DURATION_RE.exec(value.trim())
  if (!match) return undefined
  return Math.round(Number(match[1]) * (UNITS[match[2] as string] as number))
}

function checkVariant(value: unknown, index: number): BatchVariant {
  const lead = `options.variants.${index}`
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid(lead, 'must be an object with subject, template, html, text or data')
  }
  const variant = value as Record<string, unknown>
  const out: BatchVariant = {}
  for (const [key, field] of Object.entries(variant)) {
    if (field === undefined) continue
    if (!VARIANT_FIELDS.has(key))
      throw invalid(`${lead}.${key}`, 'a variant may set only subject, template, html, text and data')
    if (key === 'data') {
      if (typeof field !== 'object' || field === null || Array.isArray(field))
        throw invalid(`${lead}.data`, 'must be an object')
      out.data = field as Record<string, unknown>
    } else {
      if (typeof field !== 'string' || field.length === 0) throw invalid(`${lead}.${key}`, 'must be a non-empty string')
      out[key as 'subject' | 'template' | 'html' | 'text'] = field
    }
  }
  if (Object.keys(out).length === 0)
    throw invalid(lead, 'must change at least one of subject, template, html, text, data')
  return out
}

/**
 * Checks `variants` and `test` together (both or neither); throws `E_VALIDATION` naming the field
 * (`options.variants.1.subject`, `options.test.share`). `decideAfter` may be at most
 * `statusTtlSeconds`: the events that decide need the jobs' status records, which expire then.
 */
export function parseAbTest(variants: unknown, test: unknown, statusTtlSeconds: number): AbTestSpec | undefined {
  if (variants === undefined && test === undefined) return undefined
  if (!Array.isArray(variants) || variants.length < 2 || variants.length > 5) {
    throw invalid('options.variants', 'must be an array of 2 to 5 variants (with options.test)')
  }
  const checked = variants.map(checkVariant)
  if (typeof test !== 'object' || test === null || Array.isArray(test)) {
    throw invalid('options.test', "must be { share, decideAfter, metric: 'clicks' | 'opens' } (with options.variants)")
  }
  const fields = test as Record<string, unknown>
  for (const key of Object.keys(fields)) {
    if (!TEST_FIELDS.has(key))
      throw invalid(`options.test.${key}`, 'not a test option (share, decideAfter, metric, minSample)')
  }
  const { share, decideAfter, metric, minSample = 100 } = fields
  if (typeof share !== 'number' || !(share > 0 && share < 1)) {
    throw invalid('options.test.share', 'must be a number above 0 and below 1 (0.2 for a fifth of the audience)')
  }
  const decideAfterMs = parseDuration(decideAfter)
  if (decideAfterMs === undefined) {
    throw invalid('options.test.decideAfter', "must be ms or a duration like '90m', '2h', '1d'")
  }
  if (decideAfterMs > statusTtlSeconds * 1000) {
    throw invalid(
      'options.test.decideAfter',
      `must be at most the queue's statusTtlSeconds (${statusTtlSeconds} s): the events that decide need the jobs' status records`,
    )
  }
  if (metric !== 'clicks' && metric !== 'opens') throw invalid('options.test.metric', "must be 'clicks' or 'opens'")
  if (typeof minSample !== 'number' || !Number.isInteger(minSample) || minSample < 1) {
    throw invalid('options.test.minSample', 'must be a whole number of sends, at least 1')
  }
  return { variants: checked, share, decideAfterMs, metric, minSample }
}
