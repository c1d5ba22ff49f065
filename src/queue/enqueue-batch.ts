import * as nodeCrypto from 'node:crypto'
import { BATCH_DATA_FIELD } from '../batch-data.js'
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
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { sealBatch } from './batches.js'
import type { EnqueueRecord } from './index.js'

/** What `build` returns for one recipient: the address, and what is particular to it. */
export interface BatchRecipient {
  to: AddressInput
  /** Merged over the batch's shared `data` when the job is rendered. */
  data?: Record<string, unknown>
  /** This recipient's language; default the batch's `locale`. */
  locale?: string
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
  maxAttempts?: number
  headers?: Record<string, string>
  tags?: Record<string, string>
  /** Skip recipients whose address or data is invalid (counted in `invalid`) instead of throwing. Default false. */
  skipInvalid?: boolean
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
}

/** What `enqueueBatch` needs from its queue. */
export interface BatchWriter {
  client: RedisClient
  keys: QueueKeys
  writeRecords(records: readonly EnqueueRecord[], now: number): Promise<(string | number)[]>
}

/** Recipients per pipeline (10 enqueue script calls), and pipelines in flight at once. */
const CHUNK = 1000
const IN_FLIGHT = 3
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
  'maxAttempts',
  'headers',
  'tags',
  'skipInvalid',
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

const isThenable = (value: unknown): value is Promise<unknown> =>
  typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function'

function invalid(index: number, field: string, message: string): MailstreamError {
  return new MailstreamError('E_VALIDATION', `recipients[${index}]: ${field}: ${message}`, {
    field: `recipients.${index}.${field}`,
  })
}

export async function enqueueBatch<R>(
  writer: BatchWriter,
  batchId: string,
  recipients: Iterable<R> | AsyncIterable<R>,
  build?: BuildRecipient<R>,
  options: BatchOptions = {},
): Promise<EnqueueBatchResult> {
  const { client, keys } = writer
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

  // The part every job shares is validated once, as one full job would be.
  const { data: shared, skipInvalid = false, ...common } = options
  const startedAt = Date.now()
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

  // Shared data is written once, before any job can be sent; a batch keeps the data it began with.
  const batchKey = keys.batch(batchId)
  const [finishedAt, cancelledAt, createdAt, total] = await client.hmget(
    batchKey,
    'finishedAt',
    'cancelledAt',
    'createdAt',
    'total',
  )
  const result: EnqueueBatchResult = { batchId, total: 0, enqueued: 0, duplicates: 0, invalid: 0, cancelled: false }
  if (cancelledAt) return { ...result, cancelled: true }
  if (finishedAt) {
    // A finished batch is closed: nothing is added; every recipient counts as already there.
    for await (const _ of recipients) result.total++
    result.duplicates = result.total
    return result
  }
  let storedData: string | null
  if (createdAt === null && total === null) {
    // A new batch; of two calls starting it at once, the first HSETNX wins and the other compares.
    const setup = client.pipeline()
    if (sharedJson !== undefined) setup.hsetnx(batchKey, BATCH_DATA_FIELD, sharedJson)
    setup.hsetnx(batchKey, 'createdAt', startedAt)
    setup.hget(batchKey, BATCH_DATA_FIELD)
    const replies = (await setup.exec()) ?? []
    for (const [error] of replies) {
      if (error) throw new MailstreamError('E_REDIS', `enqueueBatch failed: ${error.message}`, { cause: error })
    }
    storedData = (replies.at(-1)?.[1] ?? null) as string | null
  } else {
    storedData = await client.hget(batchKey, BATCH_DATA_FIELD)
  }
  if ((storedData ?? undefined) !== sharedJson) {
    throw new MailstreamError(
      'E_VALIDATION',
      `data: batch ${batchId} was enqueued with other shared data; cancel it and use a new batchId`,
      { field: 'data' },
    )
  }

  let chunk: EnqueueRecord[] = []
  const inFlight = new Set<Promise<void>>()
  let failure: unknown
  let stop = false

  function count(flat: (string | number)[]): void {
    for (let i = 2; i < flat.length; i += 3) {
      const created = flat[i]
      if (created === 1) result.enqueued++
      else if (created === 2) stop = true
      else result.duplicates++
    }
  }

  async function flush(): Promise<void> {
    if (chunk.length === 0) return
    const records = chunk
    chunk = []
    const write = writer.writeRecords(records, Date.now()).then(count, (error) => {
      failure ??= error
      stop = true
    })
    const tracked = write.finally(() => inFlight.delete(tracked))
    inFlight.add(tracked)
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
  }

  function add(built: unknown, index: number): void {
    let to: unknown = built
    let data: unknown
    let locale: unknown
    if (typeof built === 'object' && built !== null && 'to' in built) {
      const fields = built as BatchRecipient
      to = fields.to
      data = fields.data
      locale = fields.locale
      for (const key in built) {
        if (key !== 'to' && key !== 'data' && key !== 'locale') {
          throw invalid(index, key, 'build may return only to, data and locale')
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
    const jobLocale = locale ?? commonLocale
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
    chunk.push({
      id,
      payload,
      dueAt,
      priority,
      type,
      maxAttempts,
      batchId,
      rcpt: address.address.toLowerCase(),
    })
  }

  /** Adds one recipient; returns a promise only when it has to wait (an async build, a full chunk). */
  function take(recipient: R): Promise<void> | undefined {
    const index = result.total++
    let built: unknown
    try {
      built = build ? build(recipient, index) : recipient
    } catch (error) {
      return rejected(error)
    }
    if (isThenable(built)) return built.then((value) => settle(value, index), rejected)
    return settle(built, index)
  }

  function settle(built: unknown, index: number): Promise<void> | undefined {
    try {
      add(built, index)
    } catch (error) {
      return rejected(error)
    }
    return chunk.length >= CHUNK ? flush() : undefined
  }

  function rejected(error: unknown): Promise<void> | undefined {
    if (skipInvalid && error instanceof MailstreamError && error.code === 'E_VALIDATION') {
      result.invalid++
      return chunk.length >= CHUNK ? flush() : undefined
    }
    throw error
  }

  try {
    if (typeof (recipients as AsyncIterable<R>)[Symbol.asyncIterator] === 'function') {
      for await (const recipient of recipients as AsyncIterable<R>) {
        if (stop) break
        const wait = take(recipient)
        if (wait) await wait
      }
    } else {
      for (const recipient of recipients as Iterable<R>) {
        if (stop) break
        const wait = take(recipient)
        if (wait) await wait
      }
    }
    if (!stop) await flush()
  } finally {
    // Every write under way settles before this call does, whether it succeeds or throws.
    await Promise.all(inFlight)
  }
  if (failure !== undefined) throw failure
  result.cancelled = stop
  if (!stop) await sealBatch(client, keys, batchId)
  return result
}
