import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import {
  addressKey,
  type EmailJob,
  type EmailJobInput,
  ID_RE,
  type Priority,
  parseJob,
  recipientsOf,
  type ValidatedJob,
  validateJob,
} from '../job.js'
import { GROUP, IDEMPOTENCY_TTL_SECONDS, type QueueKeys, queueKeys, STATUS_TTL_SECONDS } from '../keys.js'
import { addScript, defineScripts, runScript } from '../lua/index.js'
import { renderMetrics } from '../metrics.js'
import { checkClusterPrefix, parseOptions, prefixSchema, redisInputSchema } from '../options.js'
import {
  boundedClient,
  commandTimeoutSchema,
  createOutageReporter,
  type ErrorReport,
  guardMethods,
  onErrorSchema,
  quit,
  type RedisClient,
  type RedisInput,
  resolveRedis,
} from '../redis.js'
import {
  type BatchProgress,
  type BatchState,
  cancelBatch,
  createProgressListeners,
  getBatch,
  type ProgressSubscription,
} from './batches.js'
import { type BatchOptions, type BuildRecipient, type EnqueueBatchResult, enqueueBatch } from './enqueue-batch.js'
import { registerQueue } from './internals.js'
import { type BatchStats, batchStats, type JobDelivery, jobDelivery, type QueueStats, queueStats } from './stats.js'

export type { QueueStats, StreamStats } from './stats.js'

export interface EmailQueueOptions {
  /** An ioredis client (left open by `close()`), ioredis options or a redis:// URL. */
  redis: RedisInput
  /** Start of every key of this queue. Use a hash tag (`{email}`) on Redis Cluster. Default `email`. */
  prefix?: string
  /** How long a job's status is kept after it is final. Default 86400 (24 h). */
  statusTtlSeconds?: number
  /** How long an idempotency key keeps returning its job. Default 86400 (24 h). */
  idempotencyTtlSeconds?: number
  /**
   * Longest wait for Redis, in ms (10 to 600 000). A call rejects with `E_TIMEOUT` when Redis has
   * not answered within it: the whole call for most methods; each round trip for `enqueueMany`,
   * `enqueueBatch`, `cancelBatch` and `deadLetters.retry`, which may make many. `close()` gives
   * QUIT this long, then disconnects. A timed-out write may or may not have been made: retry it
   * with the same `idempotencyKey` (or job id). Default 5000.
   */
  commandTimeoutMs?: number
  /**
   * Called with an `E_REDIS` error when a connection the queue created (from a URL or options,
   * and its progress subscriber) fails: once per outage, not per reconnection attempt. Calls made
   * meanwhile reject on their own. Default: none (nothing is printed).
   */
  onError?: (error: MailstreamError) => void
}

export type JobStatusName =
  | 'queued'
  | 'scheduled'
  | 'active'
  | 'retrying'
  | 'throttled'
  | 'sent'
  | 'dead'
  | 'cancelled'
  | 'suppressed'

export const FINAL_STATUSES: readonly JobStatusName[] = ['sent', 'dead', 'cancelled', 'suppressed']

export interface EnqueueResult {
  id: string
  /** 'unknown' only for a duplicate whose job finished so long ago that its status expired. */
  status: JobStatusName | 'unknown'
  /** True when the id or idempotency key already named a job: nothing new was written. */
  duplicate: boolean
}

export interface JobState {
  id: string
  status: JobStatusName
  type: string
  priority: Priority
  attempts: number
  maxAttempts: number
  batchId?: string
  messageId?: string
  error?: string
  /** Epoch ms. */
  createdAt: number
  updatedAt: number
  sentAt?: number
  /** When a scheduled or retrying job is due, epoch ms. */
  dueAt?: number
  /** What SES reported after the send (delivered, bounced, opens, ...), once an event arrived. */
  delivery?: JobDelivery
}

export interface DeadLetter {
  /** Id of the entry in the dead stream. */
  entryId: string
  id: string
  /** The job as it was enqueued; null for a poison entry that had no readable job. */
  job: EmailJob | null
  error: string
  attempts: number
  /** Epoch ms. */
  failedAt: number
}

export interface SuppressionEntry {
  address: string
  reason: string
  /** Epoch ms. */
  at: number
}

export interface EmailQueue {
  readonly prefix: string
  readonly keys: QueueKeys
  /** The client this queue sends its commands on. */
  readonly redis: RedisClient
  enqueue(job: EmailJobInput): Promise<EnqueueResult>
  /** Validates every job first (one bad job writes nothing), then writes them pipelined. */
  enqueueMany(jobs: readonly EmailJobInput[]): Promise<EnqueueResult[]>
  /**
   * Streams recipients (an array or an async iterable of any size) into the jobs of one batch,
   * in pipelined chunks with bounded memory; one job per (batch, address), so enqueueing the same
   * batch again adds nothing. `build` maps a recipient to `{ to, data?, locale? }` (default: the
   * recipient as it is); `options` is what every job shares. Seals the batch at the end.
   */
  enqueueBatch<R>(
    batchId: string,
    recipients: Iterable<R> | AsyncIterable<R>,
    build?: BuildRecipient<R>,
    options?: BatchOptions,
  ): Promise<EnqueueBatchResult>
  /** Cancels every job of a batch that has not started sending. Resolves how many were cancelled. */
  cancelBatch(batchId: string): Promise<number>
  /** Counters, progress and state of a batch; null when unknown. */
  getBatch(batchId: string): Promise<BatchState | null>
  /** Calls `listener` with each progress message of a batch. Returns the unsubscribe function. */
  onProgress(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription
  /** Cancels a queued or scheduled job. Resolves false when it is sending, final or unknown. */
  cancel(id: string): Promise<boolean>
  getStatus(id: string): Promise<JobState | null>
  stats(): Promise<QueueStats>
  /** Prometheus text exposition: depths, outcomes, SES events, send-duration and latency histograms. */
  metrics(): Promise<string>
  /** Totals and rates of one batch (sent, delivered, bounced, opened, ...); null for an unknown batch. */
  batchStats(batchId: string): Promise<BatchStats | null>
  deadLetters: {
    /** Newest first. */
    list(options?: { count?: number }): Promise<DeadLetter[]>
    /** Sends dead jobs again with fresh attempts: one job id, or every letter. Resolves how many. */
    retry(target: string | { all: true }): Promise<number>
    /** Deletes letters (all, or those older than `before`). Resolves how many. */
    purge(options?: { before?: Date | number }): Promise<number>
  }
  suppression: {
    add(address: string, reason?: string): Promise<void>
    remove(address: string): Promise<boolean>
    has(address: string): Promise<boolean>
    /** A page of the list; pass the returned cursor back for the next one ('0' when done). */
    list(options?: { cursor?: string; count?: number }): Promise<{ items: SuppressionEntry[]; cursor: string }>
  }
  close(): Promise<void>
}

const optionsSchema = z.strictObject({
  redis: redisInputSchema,
  prefix: prefixSchema,
  statusTtlSeconds: z.number().int().positive().default(STATUS_TTL_SECONDS),
  idempotencyTtlSeconds: z.number().int().positive().default(IDEMPOTENCY_TTL_SECONDS),
  commandTimeoutMs: commandTimeoutSchema,
  onError: onErrorSchema,
})

/** Calls that may make many round trips: bounded per reply, not as a whole. */
const LONG_CALLS = ['enqueueMany', 'enqueueBatch', 'cancelBatch', 'deadLetters.retry']

/** Jobs per enqueue script call, and per pipeline (bounds memory for big lists). */
const JOBS_PER_CALL = 100
const JOBS_PER_PIPELINE = 5000

function checkId(id: unknown, field = 'id'): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new MailstreamError('E_VALIDATION', `${field}: must be 1-128 characters of A-Z a-z 0-9 _ . : -`, { field })
  }
  return id
}

const normaliseAddress = (address: unknown): string => addressKey(address, 'address')

/** Recipients as stored for the suppression check: lower-cased, comma-joined. */
export function recipientList(job: Pick<EmailJob, 'to' | 'cc' | 'bcc'>): string {
  return [...new Set(recipientsOf(job).map((address) => address.address.toLowerCase()))].join(',')
}

/** One job as the `enqueue` script takes it. */
export interface EnqueueRecord {
  id: string
  payload: string
  /** Epoch ms; 0 for now. */
  dueAt: number
  priority: Priority
  type: string
  maxAttempts: number
  /** '' for none. */
  batchId: string
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
  idempotencyKey?: string
}

function toRecord({ job, payload, dueAt }: ValidatedJob): EnqueueRecord {
  const record: EnqueueRecord = {
    id: job.id,
    payload,
    dueAt,
    priority: job.priority,
    type: job.type,
    maxAttempts: job.maxAttempts,
    batchId: job.batchId ?? '',
    rcpt: recipientList(job),
  }
  if (job.idempotencyKey !== undefined) record.idempotencyKey = job.idempotencyKey
  return record
}

function toNumber(value: string | undefined): number | undefined {
  return value === undefined || value === '' ? undefined : Number(value)
}

function fieldsToObject(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i] as string] = fields[i + 1] as string
  return out
}

export function parseDeadEntry(entryId: string, fields: string[]): DeadLetter {
  const record = fieldsToObject(fields)
  return {
    entryId,
    id: record.id ?? '',
    job: parseJob(record.job),
    error: record.error ?? '',
    attempts: Number(record.attempts ?? 0),
    failedAt: Number(record.time ?? 0),
  }
}

export function createEmailQueue(options: EmailQueueOptions): EmailQueue {
  const config = parseOptions(optionsSchema, options, 'createEmailQueue')
  const { client, owned } = resolveRedis(config.redis)
  checkClusterPrefix(client, config.prefix, 'createEmailQueue')
  defineScripts(client)
  const timeoutMs = config.commandTimeoutMs
  // Most calls are bounded as a whole (guardMethods below); the LONG_CALLS use this view of the
  // client instead, on which each reply is bounded.
  const steps = boundedClient(client, timeoutMs)
  const keys = queueKeys(config.prefix)
  const reporter = createOutageReporter(config.onError as ErrorReport | undefined, `queue ${config.prefix}: Redis`)
  const unwatch = owned ? reporter.watch(client) : () => {}
  const progress = createProgressListeners(client, keys, { timeoutMs, reporter })
  let closed = false

  function assertOpen(): void {
    if (closed) throw new MailstreamError('E_CLOSED', 'the queue is closed')
  }

  /** Keys and arguments of one `enqueue` script call for a group of jobs. */
  function enqueueCall(group: readonly EnqueueRecord[], now: number) {
    const scriptKeys: string[] = [keys.delayed, ...keys.streams]
    const args: (string | number)[] = [now, config.idempotencyTtlSeconds]
    for (const record of group) {
      const statusKey = keys.status(record.id)
      scriptKeys.push(
        statusKey,
        record.idempotencyKey !== undefined ? keys.idem(record.idempotencyKey) : statusKey,
        record.batchId !== '' ? keys.batch(record.batchId) : statusKey,
      )
      args.push(
        record.id,
        record.payload,
        `${record.dueAt} ${record.priority} ${record.type} ${record.maxAttempts} ${record.batchId} ${record.rcpt} ${record.idempotencyKey !== undefined ? '1' : '0'}`,
      )
    }
    return { scriptKeys, args }
  }

  /**
   * Writes jobs through the `enqueue` script, JOBS_PER_CALL jobs per call, all calls in one
   * pipeline. Resolves the flat reply: `id, status, created` per job. Shared by `enqueue`,
   * `enqueueMany` and `enqueueBatch`.
   */
  async function writeRecords(
    records: readonly EnqueueRecord[],
    now = Date.now(),
    via: RedisClient = client,
  ): Promise<(string | number)[]> {
    const pipeline = via.pipeline()
    for (let from = 0; from < records.length; from += JOBS_PER_CALL) {
      const { scriptKeys, args } = enqueueCall(records.slice(from, from + JOBS_PER_CALL), now)
      addScript(pipeline, 'enqueue', scriptKeys, args)
    }
    const flat: (string | number)[] = []
    for (const [error, reply] of (await pipeline.exec()) ?? []) {
      if (error) throw new MailstreamError('E_REDIS', `enqueue failed: ${error.message}`, { cause: error })
      for (const value of reply as (string | number)[]) flat.push(value)
    }
    return flat
  }

  async function writeValidated(list: readonly ValidatedJob[], via: RedisClient = client): Promise<EnqueueResult[]> {
    const flat: (string | number)[] = []
    for (let start = 0; start < list.length; start += JOBS_PER_PIPELINE) {
      const records = list.slice(start, start + JOBS_PER_PIPELINE).map(toRecord)
      flat.push(...(await writeRecords(records, Date.now(), via)))
    }
    const results: EnqueueResult[] = []
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const id = String(flat[i])
      const status = String(flat[i + 1])
      if (flat[i + 2] === 1) {
        results.push({ id, status: status as JobStatusName, duplicate: false })
      } else if (flat[i + 2] === 2) {
        // Its batch was cancelled: nothing was written.
        results.push({ id, status: 'cancelled', duplicate: false })
      } else {
        // Found through the idempotency key: read the existing job's status.
        const current = status || (await via.hget(keys.status(id), 'status'))
        results.push({ id, status: (current ?? 'unknown') as JobStatusName, duplicate: true })
      }
    }
    return results
  }

  /** Dead letters that match, read in pages on `steps` (each page bounded). */
  async function findDead(predicate: (letter: DeadLetter) => boolean): Promise<DeadLetter[]> {
    const found: DeadLetter[] = []
    let start = '-'
    for (;;) {
      const page = await steps.xrange(keys.dead, start, '+', 'COUNT', 1000)
      for (const [entryId, fields] of page) {
        const letter = parseDeadEntry(entryId, fields)
        if (predicate(letter)) found.push(letter)
      }
      if (page.length < 1000) return found
      start = `(${(page[page.length - 1] as [string, string[]])[0]}`
    }
  }

  async function retryLetter(letter: DeadLetter): Promise<boolean> {
    const job = letter.job
    if (!job) return false // a poison entry has nothing to send; purge it instead
    const statusKey = keys.status(job.id)
    const batchKey = job.batchId !== undefined ? keys.batch(job.batchId) : statusKey
    const moved = await runScript<number>(
      steps,
      'retryDead',
      [keys.dead, statusKey, keys.stream(job.priority), batchKey],
      [
        letter.entryId,
        job.id,
        JSON.stringify(job),
        job.priority,
        job.type,
        Date.now(),
        job.maxAttempts,
        job.batchId ?? '',
        recipientList(job),
      ],
    )
    return moved === 1
  }

  const methods: Omit<EmailQueue, 'prefix' | 'keys' | 'redis' | 'onProgress' | 'close'> = {
    async enqueue(input) {
      assertOpen()
      const validated = validateJob(input)
      const [result] = await writeValidated([validated])
      return result as EnqueueResult
    },

    async enqueueMany(inputs) {
      assertOpen()
      if (!Array.isArray(inputs)) {
        throw new MailstreamError('E_VALIDATION', 'jobs: must be an array', {
          field: 'jobs',
        })
      }
      const now = Date.now()
      const validated = inputs.map((input, index) => {
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
      return writeValidated(validated, steps)
    },

    async enqueueBatch(batchId, recipients, build, batchOptions) {
      assertOpen()
      const writer = {
        client: steps,
        keys,
        writeRecords: (records: readonly EnqueueRecord[], now: number) => writeRecords(records, now, steps),
      }
      return enqueueBatch(writer, batchId, recipients, build, batchOptions)
    },

    async cancelBatch(batchId) {
      assertOpen()
      return cancelBatch(steps, keys, checkId(batchId, 'batchId'), config.statusTtlSeconds)
    },

    async getBatch(batchId) {
      assertOpen()
      return getBatch(client, keys, checkId(batchId, 'batchId'))
    },

    async cancel(id) {
      assertOpen()
      checkId(id)
      const statusKey = keys.status(id)
      for (let tries = 0; tries < 3; tries++) {
        const batchId = (await client.hget(statusKey, 'batch')) ?? ''
        const [before, cancelled] = await runScript<[string, number]>(
          client,
          'cancel',
          [statusKey, keys.delayed, ...keys.streams, batchId ? keys.batch(batchId) : statusKey],
          [id, Date.now(), config.statusTtlSeconds, batchId, GROUP, batchId ? keys.progress(batchId) : ''],
        )
        if (before !== 'moved') return cancelled === 1
      }
      return false
    },

    async getStatus(id) {
      assertOpen()
      checkId(id)
      const hash = await client.hgetall(keys.status(id))
      if (!hash.status) return null
      let status = hash.status as JobStatusName
      if (status === 'queued' && hash.entry) {
        // A queued job whose entry a worker has taken is being sent.
        const pending = (await client
          .xpending(keys.stream((hash.priority ?? 'normal') as Priority), GROUP, hash.entry, hash.entry, 1)
          .catch(() => [])) as unknown[]
        if (pending.length > 0) status = 'active'
      }
      const state: JobState = {
        id,
        status,
        type: hash.type ?? '',
        priority: (hash.priority ?? 'normal') as Priority,
        attempts: Number(hash.attempts ?? 0),
        maxAttempts: Number(hash.maxAttempts ?? 3),
        createdAt: Number(hash.createdAt ?? 0),
        updatedAt: Number(hash.updatedAt ?? hash.createdAt ?? 0),
      }
      if (hash.batch) state.batchId = hash.batch
      if (hash.messageId) state.messageId = hash.messageId
      if (hash.error) state.error = hash.error
      const sentAt = toNumber(hash.sentAt)
      const dueAt = toNumber(hash.dueAt)
      if (sentAt !== undefined) state.sentAt = sentAt
      if (dueAt !== undefined) state.dueAt = dueAt
      const delivery = jobDelivery(hash)
      if (delivery) state.delivery = delivery
      return state
    },

    async stats() {
      assertOpen()
      return queueStats(client, keys)
    },

    async metrics() {
      assertOpen()
      const [stats, recorded] = await Promise.all([queueStats(client, keys), client.hgetall(keys.metrics)])
      return renderMetrics(stats, recorded)
    },

    async batchStats(batchId) {
      assertOpen()
      return batchStats(client, keys, checkId(batchId, 'batchId'))
    },

    deadLetters: {
      async list({ count = 50 } = {}) {
        assertOpen()
        if (!Number.isInteger(count) || count < 1 || count > 10_000) {
          throw new MailstreamError('E_VALIDATION', 'count: must be an integer from 1 to 10000', { field: 'count' })
        }
        const entries = await client.xrevrange(keys.dead, '+', '-', 'COUNT', count)
        return entries.map(([entryId, fields]) => parseDeadEntry(entryId, fields))
      },

      async retry(target) {
        assertOpen()
        const all = typeof target === 'object' && target !== null && (target as { all?: unknown }).all === true
        const id = all ? '' : checkId(target, 'target')
        const letters = await findDead((letter) => all || letter.id === id)
        let moved = 0
        for (const letter of letters) if (await retryLetter(letter)) moved++
        return moved
      },

      async purge({ before } = {}) {
        assertOpen()
        if (before === undefined) {
          const length = await client.xlen(keys.dead)
          await client.del(keys.dead)
          return length
        }
        const cutoff = before instanceof Date ? before.getTime() : before
        if (typeof cutoff !== 'number' || !Number.isFinite(cutoff)) {
          throw new MailstreamError('E_VALIDATION', 'before: must be a Date or epoch ms', { field: 'before' })
        }
        // Dead entries are only ever appended, so ids follow time: trim everything below the cutoff.
        return client.xtrim(keys.dead, 'MINID', String(Math.floor(cutoff)))
      },
    },

    suppression: {
      async add(address, reason = 'manual') {
        assertOpen()
        const normalised = normaliseAddress(address)
        if (typeof reason !== 'string' || /[\r\n]/.test(reason) || reason.length > 500) {
          throw new MailstreamError('E_VALIDATION', 'reason: must be a single line of at most 500 characters', {
            field: 'reason',
          })
        }
        await client.hset(keys.suppressed, normalised, JSON.stringify({ reason, at: Date.now() }))
      },
      async remove(address) {
        assertOpen()
        return (await client.hdel(keys.suppressed, normaliseAddress(address))) === 1
      },
      async has(address) {
        assertOpen()
        return (await client.hexists(keys.suppressed, normaliseAddress(address))) === 1
      },
      async list({ cursor = '0', count = 100 } = {}) {
        assertOpen()
        const [next, flat] = await client.hscan(keys.suppressed, cursor, 'COUNT', count)
        const items: SuppressionEntry[] = []
        for (let i = 0; i + 1 < flat.length; i += 2) {
          let detail: { reason?: string; at?: number } = {}
          try {
            detail = JSON.parse(flat[i + 1] as string)
          } catch {
            detail = { reason: flat[i + 1] as string }
          }
          items.push({
            address: flat[i] as string,
            reason: detail.reason ?? '',
            at: Number(detail.at ?? 0),
          })
        }
        return { items, cursor: next }
      },
    },
  }

  const queue: EmailQueue = {
    prefix: config.prefix,
    keys,
    redis: client,
    ...guardMethods(methods, timeoutMs, { unbounded: LONG_CALLS }),

    onProgress(batchId, listener) {
      assertOpen()
      checkId(batchId, 'batchId')
      if (typeof listener !== 'function') {
        throw new MailstreamError('E_VALIDATION', 'listener: must be a function', { field: 'listener' })
      }
      return progress.on(batchId, listener)
    },

    async close() {
      if (closed) return
      closed = true
      // Both within timeoutMs, at once; neither waits on a frozen Redis.
      await Promise.all([progress.close(), owned ? quit(client, timeoutMs) : undefined])
      unwatch()
    },
  }
  registerQueue(queue, { redis: client, keys, prefix: config.prefix })
  return queue
}
