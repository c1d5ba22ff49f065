import { randomBytes } from 'node:crypto'
import { z } from 'zod'
import { MailstreamError } from './errors.js'

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
  maxAttempts?: number
  idempotencyKey?: string
  batchId?: string
  headers?: Record<string, string>
  tags?: Record<string, string>
  attachments?: AttachmentInput[]
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
  /** Epoch ms when the job was enqueued. */
  createdAt: number
}

export const MAX_PAYLOAD_BYTES = 1024 * 1024
export const MAX_RECIPIENTS = 50
const MAX_DELAY_MS = 366 * 24 * 3600 * 1000

// Practical address grammar: dot-atom local part, domain of DNS labels with at least one dot.
const EMAIL_RE =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/
const NAMED_RE = /^\s*(?:"((?:[^"\\]|\\.)*)"|([^<>"]*?))\s*<([^<>]+)>\s*$/
const CONTROL_RE = /[\u0000-\u001f\u007f]/
const CRLF_RE = /[\r\n]/
const ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/
const TYPE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const HEADER_NAME_RE = /^[!-9;-~]{1,76}$/
const TAG_RE = /^[A-Za-z0-9_-]{1,256}$/
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

export function isValidEmail(address: string): boolean {
  return address.length <= 254 && EMAIL_RE.test(address) && (address.split('@')[0]?.length ?? 0) <= 64
}

/** Parses `a@b.kr` or `Name <a@b.kr>`; returns null when it is not one mailbox. */
export function parseAddress(input: AddressInput): Address | null {
  if (typeof input === 'object' && input !== null) {
    if (typeof input.address !== 'string' || !isValidEmail(input.address.trim())) return null
    if (input.name !== undefined && (typeof input.name !== 'string' || CONTROL_RE.test(input.name))) return null
    const name = input.name?.trim()
    return name ? { name, address: input.address.trim() } : { address: input.address.trim() }
  }
  if (typeof input !== 'string' || CONTROL_RE.test(input)) return null
  const trimmed = input.trim()
  if (isValidEmail(trimmed)) return { address: trimmed }
  const match = NAMED_RE.exec(trimmed)
  if (!match) return null
  const address = (match[3] ?? '').trim()
  if (!isValidEmail(address)) return null
  const name = (match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : (match[2] ?? '')).trim()
  return name ? { name, address } : { address }
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

// Random bytes are drawn in blocks: one getrandom call per 409 ids instead of one per id.
const RANDOM_BLOCK = 4096
let randomPool = Buffer.alloc(0)
let randomOffset = RANDOM_BLOCK

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

const addressSchema = z.custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
  message: 'must be an email address like a@example.com or "Name <a@example.com>", without line breaks',
})
const addressListSchema = z.union([addressSchema, z.array(addressSchema).min(1)])
const noLineBreaks = (what: string) =>
  z.string().refine((value) => !CRLF_RE.test(value), {
    message: `${what} may not contain CR or LF`,
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
  contentType: z
    .string()
    .regex(/^[\w.+-]+\/[\w.+-]+(?:\s*;[^\r\n]*)?$/, 'must be a MIME type like text/plain')
    .optional(),
  cid: z
    .string()
    .regex(/^[^\s<>]{1,200}$/, 'must be a Content-ID without spaces or angle brackets')
    .optional(),
})

const jobSchema = z
  .strictObject({
    id: z.string().regex(ID_RE, 'must be 1-128 characters of A-Z a-z 0-9 _ . : -').optional(),
    type: z.string().regex(TYPE_RE, 'must be 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit'),
    to: addressListSchema,
    cc: addressListSchema.optional(),
    bcc: addressListSchema.optional(),
    from: addressSchema.optional(),
    replyTo: addressListSchema.optional(),
    subject: noLineBreaks('subject').pipe(z.string().min(1).max(998)).optional(),
    template: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/, 'must be a template name')
      .optional(),
    html: z.string().optional(),
    text: z.string().optional(),
    data: z.record(z.string(), z.unknown()).optional(),
    locale: z
      .string()
      .regex(/^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$/, 'must be a language tag like ko or en-US')
      .optional(),
    priority: z.enum(PRIORITIES, { message: "must be 'high', 'normal' or 'low'" }).optional(),
    delayMs: z.number().int().min(0).max(MAX_DELAY_MS).optional(),
    sendAt: z
      .union([z.date(), z.number().int().nonnegative(), z.iso.datetime({ offset: true })])
      .refine((value) => !Number.isNaN(new Date(value).getTime()), {
        message: 'must be a valid date',
      })
      .optional(),
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
    headers: z
      .record(
        z
          .string()
          .regex(HEADER_NAME_RE, 'header names are printable ASCII without spaces or colons')
          .refine((name) => !RESERVED_HEADERS.has(name.toLowerCase()), {
            message: 'this header is set from the job fields (to, from, subject, ...)',
          }),
        noLineBreaks('header values').pipe(z.string().max(998)),
      )
      .optional(),
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
  })
  .superRefine((job, ctx) => {
    if (job.delayMs !== undefined && job.sendAt !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['sendAt'],
        message: 'give either delayMs or sendAt, not both',
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

function toList(value: AddressInput | AddressInput[] | undefined): Address[] | undefined {
  if (value === undefined) return undefined
  const list = Array.isArray(value) ? value : [value]
  return list.map((item) => parseAddress(item) as Address)
}

/** Dotted path of a zod issue; for unknown keys, the first unknown key. */
export function issueField(issue: z.core.$ZodIssue, fallback: string): string {
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path
  return path.map((part) => String(part)).join('.') || fallback
}

export interface ValidatedJob {
  job: EmailJob
  payload: string
  /** Epoch ms when the job is due; 0 for now. */
  dueAt: number
}

/**
 * Validates and normalises an `enqueue` input. Throws `E_VALIDATION` naming the first bad
 * field; the message lists every problem found.
 */
export function validateJob(input: unknown, now = Date.now()): ValidatedJob {
  const result = jobSchema.safeParse(input)
  if (!result.success) {
    const issues = result.error.issues.map((issue) => ({
      field: issueField(issue, 'job'),
      message: issue.message,
    }))
    const first = issues[0] ?? { field: 'job', message: 'is invalid' }
    const summary = issues.map((issue) => `${issue.field}: ${issue.message}`).join('; ')
    throw new MailstreamError('E_VALIDATION', `invalid job: ${summary}`, {
      field: first.field,
      cause: result.error,
    })
  }
  const input_ = result.data
  const job: EmailJob = {
    id: input_.id ?? newJobId(),
    type: input_.type,
    to: toList(input_.to) as Address[],
    priority: input_.priority ?? 'normal',
    maxAttempts: input_.maxAttempts ?? 3,
    createdAt: now,
  }
  const cc = toList(input_.cc)
  const bcc = toList(input_.bcc)
  const replyTo = toList(input_.replyTo)
  if (cc) job.cc = cc
  if (bcc) job.bcc = bcc
  if (input_.from !== undefined) job.from = parseAddress(input_.from) as Address
  if (replyTo) job.replyTo = replyTo
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
