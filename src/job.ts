import { randomBytes } from 'node:crypto'
import { domainToASCII } from 'node:url'
import { z } from 'zod'
import { type DeliverAt, deliverAtDue, deliverAtSchema } from './deliver-at.js'
import { issuesError, MailstreamError } from './errors.js'

export const PRIORITIES = ['high', 'normal', 'low'] as const
export type Priority = (typeof PRIORITIES)[number]

export const BUILT_IN_TYPES = [
  'verification-code',
  'subscription-confirm',
  'subscription-cancel',
  'welcome',
  'newsletter',
] as const
export type BuiltInType = (typeof BUILT_IN_TYPES)[number]

/** A mailbox: `a@b.kr`, `Name <a@b.kr>` or `{ name, address }`. */
export type AddressInput = string | { name?: string; address: string }
export interface Address {
  name?: string
  address: string
}

export interface AttachmentInput {
  filename: string
  /** A string (utf-8 unless `encoding: 'base64'`) or bytes. */
  content: string | Uint8Array
  encoding?: 'utf-8' | 'base64'
  contentType?: string
  /** Content-ID, to reference an inline image as `cid:...` from the HTML. */
  cid?: string
}
export interface Attachment {
  filename: string
  /** Always base64 once stored. */
  content: string
  contentType?: string
  cid?: string
}

/** What `enqueue` accepts. See DESIGN section 1. */
export interface EmailJobInput {
  id?: string
  type: string
  to: AddressInput | AddressInput[]
  cc?: AddressInput | AddressInput[]
  bcc?: AddressInput | AddressInput[]
  from?: AddressInput
  replyTo?: AddressInput | AddressInput[]
  subject?: string
  template?: string
  html?: string
  text?: string
  data?: Record<string, unknown>
  locale?: string
  priority?: Priority
  delayMs?: number
  sendAt?: Date | number | string
  /**
   * Due the next time the reader's clock shows `local` (`HH:MM`) in `timeZone` (IANA), daylight
   * saving included: `{ local: '09:00', timeZone: 'America/New_York' }`. Not with `delayMs` or `sendAt`.
   */
  deliverAt?: DeliverAt
  maxAttempts?: number
  idempotencyKey?: string
  batchId?: string
  headers?: Record<string, string>
  tags?: Record<string, string>
  attachments?: AttachmentInput[]
  /**
   * Advertising under Korean law (정보통신망법 제50조), on a queue with the `advertising` profile:
   * `true` needs each recipient's consent; `{ transactionEndedAt }` states the existing-transaction
   * exception instead, good for six months after that date. See docs/korea.md.
   */
  advertising?: true | { transactionEndedAt: Date | number | string }
}

/** A validated job, as stored in Redis and handed to the worker. */
export interface EmailJob {
  id: string
  type: string
  to: Address[]
  cc?: Address[]
  bcc?: Address[]
  from?: Address
  replyTo?: Address[]
  subject?: string
  template?: string
  html?: string
  text?: string
  data?: Record<string, unknown>
  locale?: string
  priority: Priority
  maxAttempts: number
  idempotencyKey?: string
  batchId?: string
  headers?: Record<string, string>
  tags?: Record<string, string>
  attachments?: Attachment[]
  /** Advertising (see `EmailJobInput.advertising`); the transaction's end as epoch ms. */
  advertising?: true | { transactionEndedAt: number }
  /** Epoch ms when the job was enqueued. */
  createdAt: number
  /** The W3C traceparent of the span that enqueued it, when traced (see docs/operations.md). */
  trace?: string
  /**
   * Recipients per mailbox provider (`{ naver: 1 }`), set at enqueue for the worker's per-provider
   * pacing (docs/rate-limiting.md). A job stored without it is classified by the worker.
   */
  providers?: Record<string, number>
  /**
   * Internal: set on a job parked for its providers' rate, whose provider units are reserved
   * already (epoch ms of the slot): the worker then charges only the global limit.
   */
  providerSlot?: number
}

export const MAX_PAYLOAD_BYTES = 1024 * 1024
export const MAX_RECIPIENTS = 50
const MAX_DELAY_MS = 366 * 24 * 3600 * 1000

// Dot-atom local part (no quoted strings); a host name with a dot, labels of letters, digits and
// inner hyphens, and a last label that is not all digits (so no bare IP address).
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?'
const EMAIL_RE = new RegExp(`^${ATEXT}+(?:\\.${ATEXT}+)*@(?:${LABEL}\\.)+(?![0-9]+$)${LABEL}$`)
const ATEXT_RE = new RegExp(`^${ATEXT}$`)
const LABEL_RE = new RegExp(`^${LABEL}$`)
const NAMED_RE = /^\s*(?:"((?:[^"\\]|\\.)*)"|([^<>"]*?))\s*<([^<>]+)>\s*$/
const CONTROL_RE = /[\u0000-\u001f\u007f]/
/** Control characters that may not reach a header: all of C0 and DEL, except TAB. */
const HEADER_CONTROL_RE = /[\u0000-\u0008\u000a-\u001f\u007f]/
const NON_ASCII_RE = /[^\u0000-\u007f]/
/** A punycode label: checked by decoding it, since the label grammar alone lets any xn-- through. */
const PUNYCODE_RE = /(?:^|[@.])xn--/i
/** A job or batch id: 1-128 characters of A-Z a-z 0-9 _ . : - (safe in keys, tags and file names). */
export const ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/
/** A template name: 1-128 characters of A-Z a-z 0-9 . _ / -, starting with a letter or digit. */
export const TEMPLATE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/
/** A BCP 47-like language tag: `ko`, `en-US`. */
export const LOCALE_RE = /^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/
/** The form of `batchJobId` (`<batchId>:<16 base64url characters>`): reserved, see enqueue-batch.ts. */
const BATCH_JOB_ID_RE = /:[A-Za-z0-9_-]{16}$/
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const HEADER_NAME_RE = /^[!-9;-~]{1,76}$/
/** An SES message tag's name or value. */
export const TAG_RE = /^[A-Za-z0-9_-]{1,256}$/
/** Headers that the job's own fields set; giving them in `headers` would let input rewrite the envelope. */
const RESERVED_HEADERS = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'subject',
  'reply-to',
  'sender',
  'date',
  'message-id',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'return-path',
])

/** Why a custom header name may not be used; undefined when it may. */
function reservedHeader(name: string): string | undefined {
  const lower = name.toLowerCase()
  if (RESERVED_HEADERS.has(lower)) return 'this header is set from the job fields (to, from, subject, ...)'
  if (lower === 'content-disposition') return 'this header is set by the MIME structure of the message'
  if (lower === 'dkim-signature') return 'messages are signed by the sending service, not by a header in the job'
  // SES obeys X-SES-* headers of a raw message (configuration set, source ARN, tags) instead of sending them.
  if (lower.startsWith('x-ses-')) return 'X-SES-* headers are instructions to SES; use tags or the transport options'
  // Resent-* headers are delivered as they are: a Resent-Bcc would show hidden recipients.
  if (lower.startsWith('resent-')) return 'Resent-* headers are for resending a message, not for a new one'
  return undefined
}

const MAX_SHOWN = 80

/** A value for an error message: quoted, control characters escaped, cut after 80 characters. */
export function showValue(value: unknown): string {
  if (typeof value !== 'string') {
    if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value)
    return Array.isArray(value) ? 'an array' : `a value of type ${typeof value}`
  }
  const chars = Array.from(value.slice(0, MAX_SHOWN * 2)).slice(0, MAX_SHOWN)
  let shown = ''
  for (const char of chars) {
    const code = char.codePointAt(0) ?? 0
    if (char === "'" || char === '\\') shown += `\\${char}`
    else if (char === '\r') shown += '\\r'
    else if (char === '\n') shown += '\\n'
    else if (char === '\t') shown += '\\t'
    // C0, DEL, C1, line/paragraph separators and bidi overrides could disturb whatever shows the log.
    else if (
      code < 0x20 ||
      (code >= 0x7f && code <= 0x9f) ||
      (code >= 0x2028 && code <= 0x202e) ||
      (code >= 0x2066 && code <= 0x2069)
    )
      shown += `\\u${code.toString(16).padStart(4, '0')}`
    else shown += char
  }
  const cut = chars.join('').length < value.length
  return `'${shown}${cut ? `...' [${value.length} characters]` : "'"}`
}

/** The address with its domain in ASCII (punycode), or why it is not an address. */
function checkEmail(input: string): { address: string } | { reason: string } {
  // The common case costs one regular expression; the reasons are worked out only for a bad one.
  if (EMAIL_RE.test(input) && input.length <= 254) {
    const at = input.lastIndexOf('@')
    if (at <= 64 && (!PUNYCODE_RE.test(input) || domainToASCII(input.slice(at + 1)) !== '')) return { address: input }
  }
  const at = input.lastIndexOf('@')
  if (at < 0) return { reason: 'it has no @' }
  const local = input.slice(0, at)
  let domain = input.slice(at + 1)
  if (local === '') return { reason: 'nothing before the @' }
  if (NON_ASCII_RE.test(local)) return { reason: 'the part before the @ must be ASCII' }
  for (const char of local) {
    if (char !== '.' && !ATEXT_RE.test(char)) {
      return { reason: `the part before the @ may not contain ${char === ' ' ? 'a space' : `'${char}'`}` }
    }
  }
  if (local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    return { reason: 'the part before the @ may not start or end with a dot, or have two dots in a row' }
  }
  if (local.length > 64) return { reason: 'the part before the @ is over 64 characters' }
  if (domain === '') return { reason: 'nothing after the @' }
  if (domain.startsWith('[')) return { reason: 'address literals in [brackets] are not accepted: use a domain name' }
  if (/^[0-9.]+$/.test(domain)) return { reason: 'an IP address is not accepted: use a domain name' }
  if (NON_ASCII_RE.test(domain) || PUNYCODE_RE.test(domain)) {
    const ascii = domainToASCII(domain)
    if (ascii === '') return { reason: 'the domain is not a valid internationalised domain name' }
    domain = ascii
  }
  const labels = domain.split('.')
  if (labels.length < 2) return { reason: 'the domain needs a dot, as in example.com' }
  for (const label of labels) {
    if (label === '') return { reason: 'the domain may not start or end with a dot, or have two dots in a row' }
    if (label.length > 63) return { reason: 'a part of the domain is over 63 characters' }
    if (!LABEL_RE.test(label)) {
      return /^[A-Za-z0-9-]+$/.test(label)
        ? { reason: 'a part of the domain may not start or end with a hyphen' }
        : { reason: 'the domain may hold only letters, digits, hyphens and dots' }
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] as string)) {
    return { reason: 'the last part of the domain may not be all digits' }
  }
  const address = `${local}@${domain}`
  if (address.length > 254) return { reason: 'it is over 254 characters' }
  return { address }
}

type AddressCheck = { address: Address } | { reason: string; shown: unknown }

/** Parses one mailbox, with the domain in punycode; or says what is wrong with it. */
function checkAddress(input: unknown): AddressCheck {
  if (typeof input === 'object' && input !== null && !Array.isArray(input)) {
    const { name, address } = input as { name?: unknown; address?: unknown }
    if (typeof address !== 'string') return { reason: 'address must be a string', shown: address }
    if (CONTROL_RE.test(address))
      return { reason: 'control characters such as line breaks are not allowed', shown: address }
    const checked = checkEmail(address.trim())
    if ('reason' in checked) return { reason: checked.reason, shown: address }
    if (name !== undefined && typeof name !== 'string') return { reason: 'name must be a string', shown: name }
    if (name !== undefined && CONTROL_RE.test(name)) {
      return { reason: 'the name may not contain control characters', shown: name }
    }
    const trimmed = name?.trim()
    return { address: trimmed ? { name: trimmed, address: checked.address } : { address: checked.address } }
  }
  if (typeof input !== 'string') return { reason: 'give a string or { name, address }', shown: input }
  if (CONTROL_RE.test(input)) return { reason: 'control characters such as line breaks are not allowed', shown: input }
  const trimmed = input.trim()
  const bare = checkEmail(trimmed)
  if ('address' in bare) return { address: { address: bare.address } }
  const match = NAMED_RE.exec(trimmed)
  if (!match) return { reason: bare.reason, shown: input }
  const inner = checkEmail((match[3] ?? '').trim())
  if ('reason' in inner) return { reason: inner.reason, shown: input }
  const name = (match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? '')).trim()
  return { address: name ? { name, address: inner.address } : { address: inner.address } }
}

/**
 * True for an address as mailstream stores it: ASCII, dot-atom local part, host name domain.
 * An internationalised domain is false here: `parseAddress` turns it into punycode first.
 */
export function isValidEmail(address: string): boolean {
  if (typeof address !== 'string' || NON_ASCII_RE.test(address)) return false
  const checked = checkEmail(address)
  return 'address' in checked && checked.address === address
}

/**
 * Parses `a@b.kr` or `Name <a@b.kr>`; returns null when it is not one mailbox. An internationalised
 * domain comes back in punycode (`user@도메인.한국` -> `user@xn--hq1bm8jm9l.xn--3e0b707e`).
 */
export function parseAddress(input: AddressInput): Address | null {
  const checked = checkAddress(input)
  return 'address' in checked ? checked.address : null
}

/** `"Name" <a@b.kr>` (name quoted when needed) or the bare address. Names are left unencoded: transports encode. */
export function formatAddress(address: Address): string {
  if (!address.name) return address.address
  const name = /^[\w !#$%&'*+/=?^`{|}~.-]*$/.test(address.name)
    ? address.name
    : `"${address.name.replace(/["\\]/g, '\\$&')}"`
  return `${name} <${address.address}>`
}

/** Every recipient address (to, cc, bcc): what SES counts against its sending rate. */
export function recipientsOf(job: Pick<EmailJob, 'to' | 'cc' | 'bcc'>): Address[] {
  return [...job.to, ...(job.cc ?? []), ...(job.bcc ?? [])]
}

/** Recipients as the send stream stores them for the suppression check: lower-cased, ','-joined. */
export function recipientList(job: Pick<EmailJob, 'to' | 'cc' | 'bcc'>): string {
  return [...new Set(recipientsOf(job).map((address) => address.address.toLowerCase()))].join(',')
}

// Random bytes are drawn in blocks: one getrandom call per 409 ids instead of one per id.
const RANDOM_BLOCK = 4096
let randomPool = Buffer.alloc(0)
let randomOffset = RANDOM_BLOCK

/**
 * One bare address (no display name) as mailstream keys it: trimmed, domain in punycode, lower
 * case. For the suppression list, verification codes and batch ids, so that `Kim@도메인.한국` and
 * `kim@xn--hq1bm8jm9l.xn--3e0b707e` are the same key. Throws `E_VALIDATION` naming `field`.
 */
export function addressKey(value: unknown, field: string): string {
  const checked = typeof value === 'string' ? checkEmail(value.trim()) : { reason: 'must be a string' }
  if ('reason' in checked) {
    throw new MailstreamError('E_VALIDATION', `${field}: ${notAnAddress({ ...checked, shown: value })}`, { field })
  }
  return checked.address.toLowerCase()
}

export function newJobId(): string {
  if (randomOffset + 10 > randomPool.length) {
    randomPool = randomBytes(RANDOM_BLOCK)
    randomOffset = 0
  }
  const random = randomPool.toString('base64url', randomOffset, randomOffset + 10)
  randomOffset += 10
  // Time-ordered prefix keeps ids sortable; 10 random bytes make collisions implausible.
  return `${Date.now().toString(36)}${random}`
}

const notAnAddress = (check: { reason: string; shown: unknown }) =>
  `not an email address: ${showValue(check.shown)} (${check.reason})`

const addressSchema = z.unknown().transform((value, ctx): Address => {
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: 'is required' })
    return z.NEVER
  }
  const checked = checkAddress(value)
  if ('address' in checked) return checked.address
  ctx.addIssue({
    code: 'custom',
    message: Array.isArray(value) ? 'must be one address, not a list' : notAnAddress(checked),
  })
  return z.NEVER
})

/** One address or a non-empty list; a bad entry is named by its index (`cc.1`). */
const addressListSchema = z.unknown().transform((value, ctx): Address[] => {
  if (value === undefined) {
    ctx.addIssue({ code: 'custom', message: 'is required' })
    return z.NEVER
  }
  if (!Array.isArray(value)) {
    const checked = checkAddress(value)
    if ('address' in checked) return [checked.address]
    ctx.addIssue({ code: 'custom', message: notAnAddress(checked) })
    return z.NEVER
  }
  if (value.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'must hold at least one address' })
    return z.NEVER
  }
  const list: Address[] = []
  value.forEach((item, index) => {
    const checked = checkAddress(item)
    if ('address' in checked) list.push(checked.address)
    else ctx.addIssue({ code: 'custom', path: [index], message: notAnAddress(checked) })
  })
  return list
})

/** Text that ends up in a header: no control characters but TAB (CR/LF would inject headers). */
const headerText = () =>
  z.string().superRefine((value, ctx) => {
    if (HEADER_CONTROL_RE.test(value)) {
      ctx.addIssue({
        code: 'custom',
        message: `may not contain control characters other than tab: ${showValue(value)}`,
      })
    }
  })

const headersSchema = z.record(z.string(), z.string()).superRefine((headers, ctx) => {
  for (const [name, value] of Object.entries(headers)) {
    const path = [name]
    if (!HEADER_NAME_RE.test(name)) {
      ctx.addIssue({ code: 'custom', path, message: 'header names are printable ASCII without spaces or colons' })
      continue
    }
    const reserved = reservedHeader(name)
    if (reserved !== undefined) {
      ctx.addIssue({ code: 'custom', path, message: reserved })
    } else if (HEADER_CONTROL_RE.test(value)) {
      ctx.addIssue({
        code: 'custom',
        path,
        message: `may not contain control characters other than tab: ${showValue(value)}`,
      })
    } else if (value.length > 998) {
      ctx.addIssue({ code: 'custom', path, message: 'header values are at most 998 characters' })
    }
  }
})

const attachmentSchema = z.strictObject({
  filename: z
    .string()
    .min(1)
    .max(255)
    .refine((value) => !CONTROL_RE.test(value), {
      message: 'may not contain control characters',
    }),
  content: z.union([z.string(), z.instanceof(Uint8Array)]),
  encoding: z.enum(['utf-8', 'base64']).optional(),
  contentType: headerText()
    .pipe(z.string().regex(/^[\w.+-]+\/[\w.+-]+(?:\s*;[^\r\n]*)?$/, 'must be a MIME type like text/plain'))
    .optional(),
  cid: headerText()
    .pipe(z.string().regex(/^[^\s<>]{1,200}$/, 'must be a Content-ID without spaces or angle brackets'))
    .optional(),
})

const notBatchJobId = (id: string) => !BATCH_JOB_ID_RE.test(id)

const jobSchema = z
  .strictObject({
    id: z
      .string()
      .regex(ID_RE, 'must be 1-128 characters of A-Z a-z 0-9 _ . : -')
      // A batch job's id is how enqueueBatch recognises a recipient already enqueued.
      .refine(notBatchJobId, {
        message: "ids ending in ':' and 16 characters of A-Z a-z 0-9 _ - are the ids of batch jobs (batchJobId)",
      })
      .optional(),
    type: z.string().regex(TYPE_RE, 'must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
    to: addressListSchema,
    cc: addressListSchema.optional(),
    bcc: addressListSchema.optional(),
    from: addressSchema.optional(),
    replyTo: addressListSchema.optional(),
    subject: headerText().pipe(z.string().min(1).max(998)).optional(),
    template: z.string().regex(TEMPLATE_NAME_RE, 'must be a template name').optional(),
    html: z.string().optional(),
    text: z.string().optional(),
    data: z.record(z.string(), z.unknown()).optional(),
    locale: z.string().regex(LOCALE_RE, 'must be a language tag like ko or en-US').optional(),
    priority: z.enum(PRIORITIES, { message: "must be 'high', 'normal' or 'low'" }).optional(),
    delayMs: z.number().int().min(0).max(MAX_DELAY_MS).optional(),
    sendAt: z
      .union([z.date(), z.number().int().nonnegative(), z.iso.datetime({ offset: true })])
      .refine((value) => !Number.isNaN(new Date(value).getTime()), {
        message: 'must be a valid date',
      })
      .optional(),
    deliverAt: deliverAtSchema.optional(),
    maxAttempts: z.number().int().min(1).max(50).optional(),
    idempotencyKey: z
      .string()
      .min(1)
      .max(256)
      .refine((value) => !CONTROL_RE.test(value), {
        message: 'may not contain control characters',
      })
      .optional(),
    batchId: z.string().regex(ID_RE, 'must be 1-128 characters of A-Z a-z 0-9 _ . : -').optional(),
    headers: headersSchema.optional(),
    tags: z
      .record(
        z
          .string()
          .regex(TAG_RE, 'tag names are 1-256 characters of A-Z a-z 0-9 _ -')
          .refine((name) => !['job_id', 'batch_id', 'type'].includes(name), {
            message: 'job_id, batch_id and type are set by mailstream',
          }),
        z.string().regex(TAG_RE, 'tag values are 1-256 characters of A-Z a-z 0-9 _ -'),
      )
      .optional(),
    attachments: z.array(attachmentSchema).max(100).optional(),
    advertising: z
      .union(
        [
          z.literal(true),
          z.strictObject({
            transactionEndedAt: z
              .union([z.date(), z.number().int().nonnegative(), z.iso.datetime({ offset: true })])
              .refine((value) => !Number.isNaN(new Date(value).getTime()), { message: 'must be a valid date' }),
          }),
        ],
        { message: 'must be true, or { transactionEndedAt } for the existing-transaction exception' },
      )
      .optional(),
  })
  .superRefine((job, ctx) => {
    if (job.delayMs !== undefined && job.sendAt !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['sendAt'],
        message: 'give either delayMs or sendAt, not both',
      })
    }
    if (job.deliverAt !== undefined && (job.delayMs !== undefined || job.sendAt !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['deliverAt'],
        message: 'give deliverAt, sendAt or delayMs, not two of them',
      })
    }
    const hasBody = job.html !== undefined || job.text !== undefined
    if (job.template !== undefined && hasBody) {
      ctx.addIssue({
        code: 'custom',
        path: ['template'],
        message: 'give either template or html/text, not both',
      })
    }
    if (job.template === undefined && !hasBody) {
      ctx.addIssue({
        code: 'custom',
        path: ['html'],
        message: 'a job needs a template, or html and/or text',
      })
    }
    if (job.template === undefined && job.subject === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['subject'],
        message: 'a job without a template needs a subject',
      })
    }
  })

type ParsedJob = z.output<typeof jobSchema>

/** The fields the common path below checks by hand; a job with any other goes through the schema. */
const COMMON_FIELDS = new Set([
  'id',
  'type',
  'to',
  'cc',
  'bcc',
  'from',
  'replyTo',
  'subject',
  'template',
  'html',
  'text',
  'data',
  'locale',
  'priority',
  'maxAttempts',
  'delayMs',
  'idempotencyKey',
  'batchId',
])
const dataSchema = z.record(z.string(), z.unknown())

/** `addressListSchema` for a value it accepts; undefined for any other. */
function commonAddressList(value: unknown): Address[] | undefined {
  if (!Array.isArray(value)) {
    const checked = checkAddress(value)
    return 'address' in checked ? [checked.address] : undefined
  }
  if (value.length === 0) return undefined
  const list: Address[] = []
  for (const item of value) {
    const checked = checkAddress(item)
    if (!('address' in checked)) return undefined
    list.push(checked.address)
  }
  return list
}

const isString = (value: unknown): value is string => typeof value === 'string'
const isIntegerIn = (value: unknown, min: number, max: number) =>
  typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max

/**
 * What `jobSchema` makes of a job of the common shape (a plain object of the COMMON_FIELDS, each
 * valid), by the same checks without the schema's cost; undefined for anything else, which then
 * goes through the schema for its result or its error. So results and errors are the schema's.
 */
function parseCommon(input: unknown): ParsedJob | undefined {
  if (typeof input !== 'object' || input === null || Object.getPrototypeOf(input) !== Object.prototype) return undefined
  const job = input as Record<string, unknown>
  // Own names, not only enumerable keys: the schema reads every field it knows by name.
  for (const field of Object.getOwnPropertyNames(job)) {
    if (!COMMON_FIELDS.has(field) || job[field] === undefined) return undefined
  }
  const { id, type, subject, template, html, text, locale, idempotencyKey, batchId } = job
  if (!isString(type) || !TYPE_RE.test(type)) return undefined
  const to = commonAddressList(job.to)
  if (to === undefined) return undefined
  const out: ParsedJob = { type, to }
  if (id !== undefined) {
    if (!isString(id) || !ID_RE.test(id) || !notBatchJobId(id)) return undefined
    out.id = id
  }
  for (const field of ['cc', 'bcc', 'replyTo'] as const) {
    if (job[field] === undefined) continue
    const list = commonAddressList(job[field])
    if (list === undefined) return undefined
    out[field] = list
  }
  if (job.from !== undefined) {
    const checked = checkAddress(job.from)
    if (!('address' in checked)) return undefined
    out.from = checked.address
  }
  if (subject !== undefined) {
    if (!isString(subject) || HEADER_CONTROL_RE.test(subject) || subject.length < 1 || subject.length > 998) {
      return undefined
    }
    out.subject = subject
  }
  if (template !== undefined) {
    if (!isString(template) || !TEMPLATE_NAME_RE.test(template)) return undefined
    out.template = template
  }
  if (html !== undefined) {
    if (!isString(html)) return undefined
    out.html = html
  }
  if (text !== undefined) {
    if (!isString(text)) return undefined
    out.text = text
  }
  if (job.data !== undefined) {
    const data = dataSchema.safeParse(job.data)
    if (!data.success) return undefined
    out.data = data.data
  }
  if (locale !== undefined) {
    if (!isString(locale) || !LOCALE_RE.test(locale)) return undefined
    out.locale = locale
  }
  if (job.priority !== undefined) {
    if (!PRIORITIES.includes(job.priority as Priority)) return undefined
    out.priority = job.priority as Priority
  }
  if (job.maxAttempts !== undefined) {
    if (!isIntegerIn(job.maxAttempts, 1, 50)) return undefined
    out.maxAttempts = job.maxAttempts as number
  }
  if (job.delayMs !== undefined) {
    if (!isIntegerIn(job.delayMs, 0, MAX_DELAY_MS)) return undefined
    out.delayMs = job.delayMs as number
  }
  if (idempotencyKey !== undefined) {
    if (!isString(idempotencyKey) || idempotencyKey.length < 1 || idempotencyKey.length > 256) return undefined
    if (CONTROL_RE.test(idempotencyKey)) return undefined
    out.idempotencyKey = idempotencyKey
  }
  if (batchId !== undefined) {
    if (!isString(batchId) || !ID_RE.test(batchId)) return undefined
    out.batchId = batchId
  }
  // The schema's cross-field rules (sendAt is not a common field, so delayMs stands alone).
  const hasBody = html !== undefined || text !== undefined
  if (template !== undefined ? hasBody : !hasBody || subject === undefined) return undefined
  return out
}

export interface ValidatedJob {
  job: EmailJob
  payload: string
  /** Epoch ms when the job is due; 0 for now. */
  dueAt: number
}

/**
 * Validates every job of an `enqueueMany` call before any is written: one bad job throws
 * `E_VALIDATION` naming it (`jobs[3]: to: ...`, field `3.to`) and nothing is written.
 */
export function validateJobs(inputs: unknown, now: number): ValidatedJob[] {
  if (!Array.isArray(inputs)) {
    throw new MailstreamError('E_VALIDATION', 'jobs: must be an array', { field: 'jobs' })
  }
  return inputs.map((input, index) => {
    try {
      return validateJob(input, now)
    } catch (error) {
      const inner = error as MailstreamError
      throw new MailstreamError('E_VALIDATION', `jobs[${index}]: ${inner.message.replace('[mailstream] ', '')}`, {
        field: `${index}.${inner.field ?? 'job'}`,
        cause: inner,
      })
    }
  })
}

/**
 * Validates and normalises an `enqueue` input. Throws `E_VALIDATION` naming the first bad
 * field; the message lists every problem found.
 */
export function validateJob(input: unknown, now = Date.now()): ValidatedJob {
  let input_ = parseCommon(input)
  if (input_ === undefined) {
    const result = jobSchema.safeParse(input)
    if (!result.success) {
      throw issuesError('E_VALIDATION', result.error, 'job', 'invalid job: ')
    }
    input_ = result.data
  }
  const job: EmailJob = {
    id: input_.id ?? newJobId(),
    type: input_.type,
    to: input_.to,
    priority: input_.priority ?? 'normal',
    maxAttempts: input_.maxAttempts ?? 3,
    createdAt: now,
  }
  if (input_.cc !== undefined) job.cc = input_.cc
  if (input_.bcc !== undefined) job.bcc = input_.bcc
  if (input_.from !== undefined) job.from = input_.from
  if (input_.replyTo !== undefined) job.replyTo = input_.replyTo
  if (input_.subject !== undefined) job.subject = input_.subject
  if (input_.template !== undefined) job.template = input_.template
  if (input_.html !== undefined) job.html = input_.html
  if (input_.text !== undefined) job.text = input_.text
  if (input_.data !== undefined) job.data = input_.data
  if (input_.locale !== undefined) job.locale = input_.locale
  if (input_.idempotencyKey !== undefined) job.idempotencyKey = input_.idempotencyKey
  if (input_.batchId !== undefined) job.batchId = input_.batchId
  if (input_.headers !== undefined) job.headers = input_.headers
  if (input_.tags !== undefined) job.tags = input_.tags
  if (input_.advertising !== undefined) {
    job.advertising =
      input_.advertising === true
        ? true
        : { transactionEndedAt: new Date(input_.advertising.transactionEndedAt).getTime() }
  }
  if (input_.attachments !== undefined) {
    job.attachments = input_.attachments.map((attachment) => {
      const content =
        typeof attachment.content === 'string'
          ? attachment.encoding === 'base64'
            ? attachment.content
            : Buffer.from(attachment.content, 'utf8').toString('base64')
          : Buffer.from(attachment.content).toString('base64')
      const stored: Attachment = { filename: attachment.filename, content }
      if (attachment.contentType !== undefined) stored.contentType = attachment.contentType
      if (attachment.cid !== undefined) stored.cid = attachment.cid
      return stored
    })
  }

  const recipients = recipientsOf(job).length
  if (recipients > MAX_RECIPIENTS) {
    throw new MailstreamError('E_VALIDATION', `invalid job: to: at most ${MAX_RECIPIENTS} recipients (to+cc+bcc)`, {
      field: 'to',
    })
  }

  let payload: string
  try {
    payload = JSON.stringify(job)
  } catch (cause) {
    throw new MailstreamError('E_VALIDATION', 'invalid job: data: must be JSON-serialisable', { field: 'data', cause })
  }
  const bytes = Buffer.byteLength(payload, 'utf8')
  if (bytes > MAX_PAYLOAD_BYTES) {
    throw new MailstreamError(
      'E_VALIDATION',
      `invalid job: payload is ${bytes} bytes, over the ${MAX_PAYLOAD_BYTES}-byte limit (attachments and data count)`,
      { field: 'payload' },
    )
  }

  let dueAt = 0
  if (input_.delayMs !== undefined && input_.delayMs > 0) dueAt = now + input_.delayMs
  if (input_.sendAt !== undefined) {
    const at = new Date(input_.sendAt).getTime()
    if (at > now) dueAt = at
  }
  if (input_.deliverAt !== undefined) dueAt = deliverAtDue(input_.deliverAt, now)
  return { job, payload, dueAt }
}

/** Parses a stored payload; returns null when it is not a job (a poison entry). */
export function parseJob(payload: string | null | undefined): EmailJob | null {
  if (!payload) return null
  try {
    const job = JSON.parse(payload) as EmailJob
    if (typeof job !== 'object' || job === null || typeof job.id !== 'string' || !Array.isArray(job.to)) return null
    return job
  } catch {
    return null
  }
}
