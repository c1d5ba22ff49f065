// The input of `enqueueBatch`: its arguments checked, the part every job shares validated once,
// and each recipient turned into an enqueue record with its payload joined as a string.
import * as nodeCrypto from 'node:crypto'
import type { BatchTestOptions, BatchVariant } from '../ab-test/options.js'
import type { DeliverAt } from '../deliver-at.js'
import { MailstreamError } from '../errors.js'
import {
  type Address,
  type AddressInput,
  type EmailJobInput,
  LOCALE_RE,
  MAX_PAYLOAD_BYTES,
  type Priority,
  parseAddress,
  validateJob,
} from '../job.js'
import type { EnqueueRecord } from '../lua/enqueue.js'
import { batchDue, type Hold, type RecipientDue } from './schedule.js'

/** What `build` returns for one recipient: the address, and what is particular to it. */
export interface BatchRecipient {
  to: AddressInput
  /** Merged over the batch's shared `data` when the job is rendered. */
  data?: Record<string, unknown> | undefined
  /** This recipient's language; default the batch's `locale`. */
  locale?: string | undefined
  /** This recipient's IANA time zone: the job is due at the batch's `deliverAt.local` there. */
  timeZone?: string | undefined
  /** This recipient's own local time and zone, instead of the batch's `deliverAt`. */
  deliverAt?: DeliverAt | undefined
}

export type BuildRecipient<R> = (
  recipient: R,
  index: number,
) => BatchRecipient | AddressInput | Promise<BatchRecipient | AddressInput>

/** What every job of a batch shares. */
export interface BatchOptions {
  /** Default `newsletter`. */
  type?: string
  template?: string
  subject?: string
  html?: string
  text?: string
  /** Data every job shares (an issue's title and Markdown body): stored once, not in each job. */
  data?: Record<string, unknown>
  locale?: string
  from?: AddressInput
  replyTo?: AddressInput | AddressInput[]
  /** Default `low`, so that transactional mail (verification codes) never waits behind a newsletter. */
  priority?: Priority
  delayMs?: number
  sendAt?: Date | number | string
  /** Each job due at this wall-clock time; a recipient's `timeZone` or `deliverAt` overrides it. */
  deliverAt?: DeliverAt
  maxAttempts?: number
  headers?: Record<string, string>
  tags?: Record<string, string>
  /** Skip recipients whose address or data is invalid (counted in `invalid`) instead of throwing. Default false. */
  skipInvalid?: boolean
  /**
   * Advertising (정보통신망법 제50조), on a queue with the `advertising` profile: each recipient's
   * consent is looked up a chunk at a time, and a recipient without one is left out and counted in
   * `withoutConsent`. The transaction exception is per recipient: enqueue those jobs with `enqueue`.
   */
  advertising?: true
  /**
   * An A/B test (with `test`): 2-5 variants, each overriding the shared subject, body (template or
   * html/text) or data. A reproducible `test.share` of the recipients gets them in equal parts; the
   * others are held back and get the winner after `test.decideAfter` (docs/newsletters.md).
   */
  variants?: BatchVariant[]
  /** How the variants are tested and the winner chosen (with `variants`). */
  test?: BatchTestOptions
}

export interface EnqueueBatchResult {
  batchId: string
  /** Recipients seen. */
  total: number
  /** New jobs written. */
  enqueued: number
  /** Recipients that already had a job in this batch (an earlier call, or the same address twice). */
  duplicates: number
  /** Recipients skipped as invalid (`skipInvalid`). */
  invalid: number
  /** The batch was cancelled (before or during the call): no more jobs were written. */
  cancelled: boolean
  /** Advertising batches only: recipients left out because they have no advertising consent. */
  withoutConsent?: number
  /** A/B test batches only: recipients held back for the winner (enqueued when the test is decided). */
  held?: number
}

const BATCH_ID_RE = /^[A-Za-z0-9_.:-]{1,111}$/
const BATCH_OPTIONS = new Set([
  'type',
  'template',
  'subject',
  'html',
  'text',
  'data',
  'locale',
  'from',
  'replyTo',
  'priority',
  'delayMs',
  'sendAt',
  'deliverAt',
  'maxAttempts',
  'headers',
  'tags',
  'skipInvalid',
  'advertising',
  'variants',
  'test',
])

const sha256 =
  typeof (nodeCrypto as { hash?: unknown }).hash === 'function'
    ? (value: string) => nodeCrypto.hash('sha256', value, 'base64url')
    : (value: string) => nodeCrypto.createHash('sha256').update(value).digest('base64url')

/**
 * The job id of a recipient in a batch: `<batchId>:<16 base64url characters of SHA-256 of the
 * lower-case address>` (96 bits). The enqueue script treats an existing id as a duplicate, so
 * the same batch enqueued twice sends each address once, without an extra key per job.
 * `enqueue` refuses a caller id of this form (BATCH_JOB_ID_RE in job.ts): keep the two in step.
 */
export function batchJobId(batchId: string, address: string): string {
  // The stored form: an internationalised domain in punycode, as the job itself carries it.
  const key = parseAddress(address.trim())?.address ?? address.trim()
  return `${batchId}:${sha256(key.toLowerCase()).slice(0, 16)}`
}

function invalid(index: number, field: string, message: string): MailstreamError {
  return new MailstreamError('E_VALIDATION', `recipients[${index}]: ${field}: ${message}`, {
    field: `recipients.${index}.${field}`,
  })
}

/** Throws `E_VALIDATION` naming the argument when a call to `enqueueBatch` is malformed. */
export function checkBatchCall(batchId: unknown, recipients: unknown, build: unknown, options: unknown): void {
  if (typeof batchId !== 'string' || !BATCH_ID_RE.test(batchId)) {
    throw new MailstreamError('E_VALIDATION', 'batchId: must be 1-111 characters of A-Z a-z 0-9 _ . : -', {
      field: 'batchId',
    })
  }
  const iterable = recipients as { [Symbol.iterator]?: unknown; [Symbol.asyncIterator]?: unknown } | null
  if (
    typeof iterable !== 'object' ||
    iterable === null ||
    (typeof iterable[Symbol.iterator] !== 'function' && typeof iterable[Symbol.asyncIterator] !== 'function')
  ) {
    throw new MailstreamError('E_VALIDATION', 'recipients: must be an array or an (async) iterable', {
      field: 'recipients',
    })
  }
  if (build !== undefined && typeof build !== 'function') {
    throw new MailstreamError('E_VALIDATION', 'build: must be a function (recipient, index) => { to, data? }', {
      field: 'build',
    })
  }
  if (typeof options !== 'object' || options === null) {
    throw new MailstreamError('E_VALIDATION', 'options: must be an object', { field: 'options' })
  }
  for (const key of Object.keys(options)) {
    if (!BATCH_OPTIONS.has(key)) {
      throw new MailstreamError(
        'E_VALIDATION',
        `options.${key}: not a batch option (per-recipient fields come from build)`,
        {
          field: `options.${key}`,
        },
      )
    }
  }
}

/** What every job of a batch shares, validated once as one full job would be. */
export interface BatchTemplate {
  batchId: string
  /** The shared data as JSON; undefined for none. */
  sharedJson: string | undefined
  skipInvalid: boolean
  /** Epoch ms: the batch's jobs are created at this time. */
  startedAt: number
  dueAt: number
  /** Each recipient's due time: `dueAt` (held by the queue's calendar), or its own zone's (schedule.ts). */
  due: RecipientDue
  /** The shared middle of every payload (JSON members without braces). */
  middle: string
  locale: string | undefined
  priority: Priority
  type: string
  maxAttempts: number
  /** An advertising batch (`advertising: true`): marked so in the batch hash, for the dashboard. */
  advertising: boolean
}

export function batchTemplate(batchId: string, options: BatchOptions, hold?: Hold, now = Date.now()): BatchTemplate {
  const { data: shared, skipInvalid = false, ...common } = options
  const startedAt = now
  const sample: EmailJobInput = {
    type: 'newsletter',
    priority: 'low',
    ...common,
    to: 'recipient@example.com',
    batchId,
  }
  const { job: commonJob, dueAt } = validateJob(sample, startedAt)
  let sharedJson: string | undefined
  if (shared !== undefined) {
    if (typeof shared !== 'object' || shared === null || Array.isArray(shared)) {
      throw new MailstreamError('E_VALIDATION', 'data: must be an object', { field: 'data' })
    }
    try {
      sharedJson = JSON.stringify(shared)
    } catch (cause) {
      throw new MailstreamError('E_VALIDATION', 'data: must be JSON-serialisable', { field: 'data', cause })
    }
    if (Buffer.byteLength(sharedJson) > MAX_PAYLOAD_BYTES) {
      throw new MailstreamError('E_VALIDATION', `data: over the ${MAX_PAYLOAD_BYTES}-byte limit`, { field: 'data' })
    }
    if (sharedJson === '{}') sharedJson = undefined
  }
  const { id: _id, to: _to, createdAt: _createdAt, data: _data, locale: commonLocale, ...rest } = commonJob
  // Each payload is this shared middle plus the few fields that vary, joined as strings.
  const middle = JSON.stringify(rest).slice(1, -1)
  const { priority, type, maxAttempts } = commonJob
  return {
    batchId,
    sharedJson,
    skipInvalid,
    startedAt,
    dueAt,
    due: batchDue({
      type: commonJob.type,
      dueAt,
      deliverAt: options.deliverAt,
      timed: options.sendAt !== undefined || options.delayMs !== undefined,
      now: startedAt,
      hold,
    }),
    middle,
    locale: commonLocale,
    priority,
    type,
    maxAttempts,
    advertising: commonJob.advertising !== undefined,
  }
}

/** The enqueue record of one built recipient (`build`'s result); throws `E_VALIDATION` naming it. */
export function toBatchRecord(template: BatchTemplate, built: unknown, index: number): EnqueueRecord {
  const { batchId, middle, startedAt, priority, type, maxAttempts } = template
  let to: unknown = built
  let data: unknown
  let locale: unknown
  let time: BatchRecipient | undefined
  if (typeof built === 'object' && built !== null && 'to' in built) {
    const fields = built as BatchRecipient
    to = fields.to
    data = fields.data
    locale = fields.locale
    time = fields
    for (const key in built) {
      if (key !== 'to' && key !== 'data' && key !== 'locale' && key !== 'timeZone' && key !== 'deliverAt') {
        throw invalid(index, key, 'build may return only to, data, locale, timeZone and deliverAt')
      }
    }
  }
  const address = parseAddress(to as AddressInput) as Address | null
  if (!address) throw invalid(index, 'to', 'must be one email address like a@example.com, without line breaks')
  const id = batchJobId(batchId, address.address)
  let payload = `{"id":"${id}","to":[{${
    address.name !== undefined ? `"name":${JSON.stringify(address.name)},` : ''
  }"address":"${address.address}"}],${middle},"createdAt":${startedAt}`
  if (data !== undefined) {
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw invalid(index, 'data', 'must be an object')
    let json: string
    try {
      json = JSON.stringify(data)
    } catch {
      throw invalid(index, 'data', 'must be JSON-serialisable')
    }
    payload += `,"data":${json}`
  }
  const jobLocale = locale ?? template.locale
  if (jobLocale !== undefined) {
    if (typeof jobLocale !== 'string' || !LOCALE_RE.test(jobLocale)) {
      throw invalid(index, 'locale', 'must be a language tag like ko or en-US')
    }
    payload += `,"locale":"${jobLocale}"`
  }
  payload += '}'
  // A UTF-8 byte is at most three UTF-16 units: count bytes only when it could matter.
  if (payload.length * 3 > MAX_PAYLOAD_BYTES && Buffer.byteLength(payload) > MAX_PAYLOAD_BYTES) {
    throw invalid(index, 'data', `the job is over the ${MAX_PAYLOAD_BYTES}-byte limit`)
  }
  return {
    id,
    payload,
    dueAt: template.due(time, index),
    priority,
    type,
    maxAttempts,
    batchId,
    rcpt: address.address.toLowerCase(),
  }
}
