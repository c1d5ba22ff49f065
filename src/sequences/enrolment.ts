// The enrolment record: its key parts, its fields as stored, and the checks of what enrol takes.
import { createHash } from 'node:crypto'
import { parseTimeZone } from '../calendar.js'
import { MailstreamError } from '../errors.js'
import { addressKey, LOCALE_RE, showValue } from '../job.js'
import type { EnrolmentStatus } from '../lua/sequences.js'
import type { SequenceDefinition } from './steps.js'
import type { Contact, Enrolment, SequenceStats } from './types.js'

export const REASON_RE = /^[A-Za-z0-9_:.-]{1,64}$/
const MAX_DATA_BYTES = 64 * 1024
export const ACTIVE: readonly EnrolmentStatus[] = ['active', 'waiting']

export const fail = (field: string, message: string): never => {
  throw new MailstreamError('E_VALIDATION', `${field}: ${message}`, { field })
}

/** The first 16 hex digits of SHA-256 of the normalised address: its part of the enrolment key and job ids. */
export const addressHash = (address: string): string => createHash('sha256').update(address).digest('hex').slice(0, 16)

/** The id of the email of a step: the same on every run, so that a step run twice is a duplicate job. */
export const sequenceJobId = (sequenceId: string, hash: string, run: number, stepId: string): string =>
  `seq.${sequenceId}.${hash}.${run}.${stepId}`

export function checkContact(input: unknown): Required<Pick<Contact, 'address'>> & Contact {
  const contact = typeof input === 'string' ? { address: input } : input
  if (typeof contact !== 'object' || contact === null)
    fail('contact', 'expected an address or { address, name?, locale?, timeZone? }')
  const { address, name, locale, timeZone, ...rest } = contact as Contact
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) fail(`contact.${unknown}`, 'unknown field')
  const out: Contact = { address: addressKey(address, 'contact.address') }
  if (name !== undefined) {
    if (typeof name !== 'string' || name.length > 200 || /[\r\n]/.test(name)) {
      fail('contact.name', 'must be one line of at most 200 characters')
    }
    out.name = name
  }
  if (locale !== undefined) {
    if (typeof locale !== 'string' || !LOCALE_RE.test(locale))
      fail('contact.locale', `must be a language tag such as ko (got ${showValue(locale)})`)
    out.locale = locale
  }
  if (timeZone !== undefined) out.timeZone = parseTimeZone(timeZone, 'contact.timeZone')
  return out
}

export function checkData(data: unknown): string {
  if (data === undefined) return '{}'
  if (typeof data !== 'object' || data === null || Array.isArray(data)) fail('data', 'must be an object')
  let json: string
  try {
    json = JSON.stringify(data)
  } catch (error) {
    return fail('data', `must be JSON (${(error as Error).message})`)
  }
  if (Buffer.byteLength(json) > MAX_DATA_BYTES) fail('data', `must be at most ${MAX_DATA_BYTES} bytes as JSON`)
  return json
}

export function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(value)) {
    fail(field, `must be 1-40 characters of A-Z a-z 0-9 _ - (got ${showValue(value)})`)
  }
  return value as string
}

const optionalNumber = (value: string | undefined) => (value === undefined || value === '' ? undefined : Number(value))

export function parseEnrolment(hash: Record<string, string>): Enrolment | null {
  if (!hash.status) return null
  const events: Record<string, number> = {}
  for (const [field, value] of Object.entries(hash)) if (field.startsWith('ev:')) events[field.slice(3)] = Number(value)
  let data: Record<string, unknown> = {}
  try {
    data = JSON.parse(hash.data ?? '{}')
  } catch {}
  const out: Enrolment = {
    sequenceId: hash.sequence ?? '',
    address: hash.address ?? '',
    data,
    status: hash.status as EnrolmentStatus,
    step: hash.step ?? '',
    version: Number(hash.version ?? 1),
    startedVersion: Number(hash.startedVersion ?? hash.version ?? 1),
    run: Number(hash.run ?? 1),
    enrolledAt: Number(hash.enrolledAt ?? 0),
    updatedAt: Number(hash.updatedAt ?? 0),
    events,
  }
  const optional = {
    name: hash.name,
    locale: hash.locale,
    timeZone: hash.timeZone,
    nextAt: optionalNumber(hash.nextAt),
    waitingFor: hash.waitingFor,
    exitReason: hash.exitReason,
    finishedAt: optionalNumber(hash.finishedAt),
    lastJob: hash.lastJob,
    error: hash.error,
  }
  for (const [field, value] of Object.entries(optional)) {
    if (value !== undefined && value !== '') (out as unknown as Record<string, unknown>)[field] = value
  }
  return out
}

/** A sequence's counters hash as `stats()` gives it: totals, exits by reason, and one row per step. */
export function parseStats(hash: Record<string, string>, definition: SequenceDefinition): SequenceStats {
  const count = (field: string) => Math.max(0, Number(hash[field] ?? 0))
  const exitReasons: Record<string, number> = {}
  for (const [field, value] of Object.entries(hash)) {
    if (field.startsWith('exited:')) exitReasons[field.slice(7)] = Number(value)
  }
  return {
    enrolled: count('enrolled'),
    active: count('status:active'),
    waiting: count('status:waiting'),
    done: count('status:done'),
    exited: count('status:exited'),
    exitReasons,
    steps: definition.nodes.map((node) => ({
      id: node.id,
      kind: node.kind,
      at: count(`at:${node.id}`),
      sent: count(`sent:${node.id}`),
    })),
  }
}
