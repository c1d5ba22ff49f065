import { setMaxListeners } from 'node:events'
import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import { z } from 'zod'
import { BATCH_DATA_FIELD, createBatchDataCache } from '../batch-data.js'
import { describeError, MailstreamError, type RetryClass, TransportError } from '../errors.js'
import { type Address, type AddressInput, type EmailJob, parseAddress, parseJob } from '../job.js'
import { GROUP, queueKeys, STATUS_TTL_SECONDS } from '../keys.js'
import { defineScripts, runScript } from '../lua/index.js'
import { createMetricsRecorder } from '../metrics.js'
import { checkClusterPrefix, parseOptions, prefixSchema, redisInputSchema } from '../options.js'
import {
  bounded,
  boundedClient,
  commandTimeoutSchema,
  duplicateForBlocking,
  isCluster,
  quit,
  type RedisClient,
  type RedisInput,
  resolveRedis,
} from '../redis.js'
import type { EmailMessage, RenderedEmail, SendResult, TemplateRendererLike, Transport } from '../transport.js'
import {
  createPacing,
  dailyQuotaSchema,
  type PaceEvent,
  rateLimitSchema,
  type WorkerDailyQuota,
  type WorkerRateLimit,
} from './pacing.js'

export interface EmailWorkerOptions {
  /** An ioredis client (never closed by the worker), ioredis options or a redis:// URL. */
  redis: RedisInput
  /** The queue's prefix. Default `email`. */
  prefix?: string
  transport: Transport
  /** Renders jobs that name a template (see `createTemplateRenderer`). */
  templates?: TemplateRendererLike
  /** Sender for jobs that do not name one. */
  from?: AddressInput
  /** Sends in flight at once in this worker. Default 10. */
  concurrency?: number
  /** An entry pending longer than this is taken over by another worker. Default 60 000. */
  visibilityTimeoutMs?: number
  /** An entry delivered more often than this (crash loop) is dead-lettered. Default 5. */
  maxDeliveries?: number
  /**
   * A send still running after this is aborted and retried later. Must be below
   * `visibilityTimeoutMs`. Default 30 000, or half of `visibilityTimeoutMs` when that is lower.
   */
  sendTimeoutMs?: number
  /**
   * Longest wait for one Redis call of the worker (a fetch, an outcome write): a frozen Redis then
   * surfaces as an `error` event and the call is retried, and `start()` returns after this at the
   * latest. Default 5000.
   */
  commandTimeoutMs?: number
  /** How long an idle worker waits on Redis for new jobs per call. Default 1000. */
  blockMs?: number
  /** Longest wait between checks for due scheduled jobs. Default 1000. */
  schedulerIntervalMs?: number
  /** Retry delay after a transient failure: `baseMs * 2^attempt`, at most `maxMs`, with ±20 % jitter. */
  backoff?: { baseMs?: number; maxMs?: number }
  /** Delay before a throttled send is tried again when the transport gives no retryAfterMs. Default 1000. */
  throttleDelayMs?: number
  /** How long a final status is kept. Default 86400 (24 h). */
  statusTtlSeconds?: number
  /** Consumer name in the group. Default `<host>:<pid>:<random>`. */
  consumer?: string
  /**
   * Recipients per second (to + cc + bcc), charged right before each send and shared by every
   * worker on the same prefix (GCRA in Redis). `{}` means 14 per second (SES MaxSendRate).
   * Default: no limit.
   */
  rateLimit?: WorkerRateLimit
  /** Recipients per rolling 24 h (or `windowMs`): sending pauses while the window is full. */
  dailyQuota?: WorkerDailyQuota
}

export interface SentEvent {
  id: string
  job: EmailJob
  messageId: string
  attempts: number
  /** Recipients the provider refused while it accepted the message for the others (SMTP). */
  rejected?: string[]
}
export interface RetryingEvent {
  id: string
  job: EmailJob
  attempts: number
  error: string
  /** Epoch ms of the next try. */
  retryAt: number
  /** True for a throttle (rate exceeded): no attempt was used. */
  throttled: boolean
}
export interface FailedEvent {
  id: string
  job: EmailJob | null
  attempts: number
  error: Error
  retry: RetryClass
  /** True when the job goes to the dead letters now. */
  final: boolean
}
export interface DeadEvent {
  id: string
  job: EmailJob | null
  attempts: number
  error: string
}
export interface SuppressedEvent {
  id: string
  job: EmailJob
  addresses: string[]
}
export interface WorkerEvents {
  sent: SentEvent
  retrying: RetryingEvent
  failed: FailedEvent
  dead: DeadEvent
  suppressed: SuppressedEvent
  error: MailstreamError
  /** Nothing waiting and nothing in flight, after at least one job since the last `drained`. */
  drained: { processed: number }
  paused: { reason: string }
  resumed: { reason?: string }
  stopped: { abandoned: number }
  /** This worker's pace changed: lowered after a throttle, raised step by step back to `perSecond`. */
  pace: PaceEvent
}
export type WorkerEventName = keyof WorkerEvents

export interface EmailWorker {
  readonly running: boolean
  /** True while paused by `pause()`, by the transport, or by a full daily quota. */
  readonly paused: boolean
  /** Recipients per second this worker allows itself (below `rateLimit.perSecond` after a throttle). */
  readonly pace: number | undefined
  /** Jobs taken from Redis and not yet recorded as finished. */
  readonly inFlight: number
  readonly consumer: string
  /** Connects, creates the consumer groups and starts fetching. Never rejects on a Redis outage. */
  start(): Promise<void>
  /**
   * Stops fetching and waits for in-flight sends to finish. Whatever is still running after
   * `timeoutMs` is aborted and stays pending in Redis, to be taken over by another worker.
   */
  stop(options?: { timeoutMs?: number }): Promise<void>
  /** Stops taking new jobs until `resume()`; in-flight sends finish. */
  pause(reason?: string): void
  resume(): void
  on<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): () => void
}

const optionsSchema = z.strictObject({
  redis: redisInputSchema,
  prefix: prefixSchema,
  transport: z.custom<Transport>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as Transport).send === 'function' &&
      typeof (value as Transport).name === 'string',
    {
      message: 'must be a transport: an object with a name and a send(message) method',
    },
  ),
  templates: z
    .custom<TemplateRendererLike>(
      (value) =>
        typeof value === 'object' && value !== null && typeof (value as TemplateRendererLike).render === 'function',
      { message: 'must have a render(name, data) method' },
    )
    .optional(),
  from: z
    .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
      message: 'must be an email address',
    })
    .optional(),
  concurrency: z.number().int().min(1).max(10_000).default(10),
  visibilityTimeoutMs: z.number().int().min(100).default(60_000),
  maxDeliveries: z.number().int().min(1).max(1000).default(5),
  sendTimeoutMs: z.number().int().min(10).optional(),
  commandTimeoutMs: commandTimeoutSchema,
  blockMs: z.number().int().min(10).max(60_000).default(1000),
  schedulerIntervalMs: z.number().int().min(10).max(60_000).default(1000),
  backoff: z
    .strictObject({
      baseMs: z.number().int().min(1).default(1000),
      maxMs: z
        .number()
        .int()
        .min(1)
        .default(15 * 60_000),
    })
    .default({ baseMs: 1000, maxMs: 15 * 60_000 }),
  throttleDelayMs: z.number().int().min(1).default(1000),
  statusTtlSeconds: z.number().int().positive().default(STATUS_TTL_SECONDS),
  consumer: z
    .string()
    .regex(/^[^\s]{1,200}$/)
    .optional(),
  rateLimit: rateLimitSchema,
  dailyQuota: dailyQuotaSchema,
})

/** One entry read from a send stream, before its job is looked at. */
interface Delivery {
  streamIndex: number
  entryId: string
  jobId: string
  /** The job as JSON ('' when the entry has none). */
  payload: string
  /** Recipients, lower-case and ','-joined, as stored with the entry for the suppression check. */
  rcpt: string
  deliveries: number
}

type Outcome =
  | { kind: 'sent'; messageId: string; rejected?: string[] }
  | { kind: 'retry' | 'throttle'; dueAt: number; error: string }
  | { kind: 'dead'; error: string }
  | { kind: 'suppressed'; reason: string }

interface Finished {
  delivery: Delivery
  job: EmailJob | null
  attempts: number
  outcome: Outcome
  resolve(applied: boolean): void
  reject(error: unknown): void
}

interface Classified {
  retry: RetryClass
  retryAfterMs?: number
  pause: boolean
}

interface Work {
  delivery: Delivery
  verdict: 'send' | 'over'
  attempts: number
  suppressed: string[]
}

/** The `id`, `job` and `r` fields of a send-stream entry. */
function entryFields(fields: string[] | null | undefined): { jobId: string; payload: string; rcpt: string } {
  let jobId = ''
  let payload = ''
  let rcpt = ''
  for (let i = 0; fields && i + 1 < fields.length; i += 2) {
    if (fields[i] === 'id') jobId = fields[i + 1] as string
    else if (fields[i] === 'job') payload = fields[i + 1] as string
    else if (fields[i] === 'r') rcpt = fields[i + 1] as string
  }
  return { jobId, payload, rcpt }
}

const splitList = (list: string | undefined): string[] => (list ? list.split(',') : [])
/** Recipients a fetched job will be charged for, before its message is built. */
const expectedRecipients = (work: Work): number =>
  Math.max(1, splitList(work.delivery.rcpt).length - work.suppressed.length)
const recipientCount = (message: EmailMessage): number =>
  message.to.length + (message.cc?.length ?? 0) + (message.bcc?.length ?? 0)
const NOTHING_SUPPRESSED: ReadonlySet<string> = new Set()
/** What a try gives when the worker was stopped hard meanwhile: the entry stays pending. */
const ABANDONED = Symbol('abandoned')

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const jitter = (ms: number) => Math.round(ms * (0.8 + Math.random() * 0.4))

/** A promise that can be resolved from outside, for waking loops. */
function wakeable() {
  let resolveWait: (() => void) | undefined
  return {
    wait(ms: number): Promise<void> {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms)
        function done() {
          clearTimeout(timer)
          resolveWait = undefined
          resolve()
        }
        resolveWait = done
      })
    },
    wake(): void {
      resolveWait?.()
    },
  }
}

function toMailstreamError(error: unknown, what: string): MailstreamError {
  if (error instanceof MailstreamError) return error
  return new MailstreamError('E_REDIS', `${what}: ${describeError(error)}`, {
    cause: error,
  })
}

/** A send must end before another worker may take its entry over, or the job is sent twice. */
function sendTimeout(visibilityTimeoutMs: number, sendTimeoutMs: number | undefined): number {
  if (sendTimeoutMs === undefined) return Math.min(30_000, Math.floor(visibilityTimeoutMs / 2))
  if (sendTimeoutMs >= visibilityTimeoutMs) {
    throw new MailstreamError(
      'E_CONFIG',
      `createEmailWorker: sendTimeoutMs: must be below visibilityTimeoutMs (${visibilityTimeoutMs}), got ${sendTimeoutMs}: a send still running when its entry may be taken over would be sent twice`,
      { field: 'sendTimeoutMs' },
    )
  }
  return sendTimeoutMs
}

export function createEmailWorker(options: EmailWorkerOptions): EmailWorker {
  const parsed = parseOptions(optionsSchema, options, 'createEmailWorker')
  const config = { ...parsed, sendTimeoutMs: sendTimeout(parsed.visibilityTimeoutMs, parsed.sendTimeoutMs) }
  const keys = queueKeys(config.prefix)
  const transport = config.transport
  const defaultFrom = config.from !== undefined ? (parseAddress(config.from) as Address) : undefined
  const consumer = config.consumer ?? `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`
  const listeners = new Map<WorkerEventName, Set<(payload: never) => void>>()

  let client: RedisClient | undefined
  let ownsClient = false
  let blocking: RedisClient | undefined
  /** The command client as pacing sees it: every call bounded by commandTimeoutMs. */
  let pacingClient: RedisClient | undefined
  let blockingId: number | undefined
  const blockingName = `mailstream:${consumer}`.replace(/\s/g, '_')
  let blockingRead = false
  let running = false
  let paused = false
  let stopping: Promise<void> | undefined
  let abandoned = false
  let groupsReady = false
  let inFlight = 0
  let processedSinceDrain = 0
  let idle = false
  let dispatcherDone: Promise<void> = Promise.resolve()
  let schedulerDone: Promise<void> = Promise.resolve()
  const dispatcherWake = wakeable()
  const schedulerWake = wakeable()
  const reclaimCursors = ['-', '-', '-']
  let lastReclaimAt = 0
  let nextDueAt = Number.POSITIVE_INFINITY
  /** The jobs in flight here, by `heldKey`, with when their entry's idle time was last reset. */
  const held = new Map<string, { streamIndex: number; entryId: string; keptAt: number }>()
  /** Entry ids are unique per stream only: two priorities may hand out the same id. */
  const heldKey = (streamIndex: number, entryId: string) => `${streamIndex} ${entryId}`
  /**
   * Set after a failed fetch (Redis may have delivered entries whose reply never arrived) and at
   * start (a consumer name given again may own entries from an earlier life).
   */
  let lostReplies = true
  const keepWake = wakeable()

  const finishedQueue: Finished[] = []
  const metrics = createMetricsRecorder()
  let flushing: Promise<void> | undefined
  let quotaPaused = false
  const pacing = createPacing(config.prefix, config.rateLimit, config.dailyQuota, config.visibilityTimeoutMs / 4, {
    redis: () => pacingClient ?? redis(),
    abandoned: () => abandoned,
    onPace: (event) => emit('pace', event),
    onQuota(pausedByQuota, reason) {
      quotaPaused = pausedByQuota
      if (pausedByQuota) void interruptBlockingRead()
      emit(pausedByQuota ? 'paused' : 'resumed', { reason })
    },
    onCharged: () => dispatcherWake.wake(),
    onError: (error, what) => noteRedisError(error, what),
  })

  function emit<E extends WorkerEventName>(event: E, payload: WorkerEvents[E]): void {
    const set = listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as (payload: WorkerEvents[E]) => void)(payload)
      } catch (error) {
        if (event !== 'error') emit('error', toMailstreamError(error, `a '${event}' listener threw`))
      }
    }
  }

  function redis(): RedisClient {
    if (!client) throw new MailstreamError('E_CLOSED', 'the worker is not started')
    return client
  }

  /** Every Redis call of the worker has a bound: a frozen Redis becomes an error that is retried. */
  const timed = <T>(promise: Promise<T>, what: string, extraMs = 0): Promise<T> =>
    bounded(promise, config.commandTimeoutMs + extraMs, what)

  async function ensureGroups(): Promise<void> {
    for (const stream of keys.streams) {
      try {
        // Group at 0: jobs enqueued before any worker ever ran are delivered too.
        await timed(redis().xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM'), 'creating consumer groups')
      } catch (error) {
        if (!String((error as Error).message).includes('BUSYGROUP')) throw error
      }
      // Registered on every stream, so that stats count this worker even where it has read nothing yet.
      await timed(redis().xgroup('CREATECONSUMER', stream, GROUP, consumer), 'creating consumer groups')
    }
    groupsReady = true
  }

  /**
   * Each loop reports the first failure of a run of failures, not every retry: one `error` event
   * per loop and outage, however long it lasts.
   */
  function noteRedisError(error: unknown, what: string, failures = 1): void {
    if (String((error as Error)?.message).includes('NOGROUP')) groupsReady = false
    if (failures === 1) emit('error', toMailstreamError(error, what))
  }

  // ---- fetching -------------------------------------------------------------------------

  /**
   * New entries in strict priority order. Those with a job come back ready to send (their
   * recipients already checked against the suppression list); the rest go through `activate`,
   * which dead-letters them.
   */
  async function fetchStrict(count: number): Promise<{ ready: Work[]; check: Delivery[] }> {
    const flat = await timed(
      runScript<string[]>(redis(), 'fetch', [...keys.streams, keys.suppressed], [GROUP, consumer, count]),
      'fetching jobs',
    )
    const ready: Work[] = []
    const check: Delivery[] = []
    for (let i = 0; i + 6 < flat.length; i += 7) {
      const delivery: Delivery = {
        streamIndex: Number(flat[i]),
        entryId: flat[i + 1] as string,
        jobId: flat[i + 2] as string,
        payload: flat[i + 3] as string,
        rcpt: flat[i + 5] as string,
        deliveries: 1,
      }
      if (delivery.jobId === '' || delivery.payload === '') check.push(delivery)
      else ready.push({ delivery, verdict: 'send', attempts: Number(flat[i + 4]), suppressed: splitList(flat[i + 6]) })
    }
    return { ready, check }
  }

  /** Waits on Redis for new entries when there were none; they are checked by `activate`. */
  async function fetchBlocking(count: number, blockMs: number): Promise<Delivery[]> {
    const connection = blocking as RedisClient
    if (blockingId === undefined && !isCluster(connection)) {
      blockingId = Number(await timed(connection.client('ID'), 'waiting for jobs'))
    }
    if (!running || paused) return []
    blockingRead = true
    const read = connection.xreadgroup(
      'GROUP',
      GROUP,
      consumer,
      'COUNT',
      count,
      'BLOCK',
      blockMs,
      'STREAMS',
      ...keys.streams,
      '>',
      '>',
      '>',
    )
    const reply = (await timed(read, 'waiting for jobs', blockMs).finally(() => {
      blockingRead = false
    })) as [string, [string, string[]][]][] | null
    if (!reply) return []
    const out: Delivery[] = []
    for (const [stream, entries] of reply) {
      const streamIndex = keys.streams.indexOf(stream) + 1
      for (const [entryId, fields] of entries) out.push({ streamIndex, entryId, ...entryFields(fields), deliveries: 1 })
    }
    // Strict priority within what arrived together.
    return out.sort((a, b) => a.streamIndex - b.streamIndex)
  }

  /** Entries other consumers left pending past the visibility timeout. */
  async function reclaim(count: number): Promise<Delivery[]> {
    const out: Delivery[] = []
    for (let index = 0; index < 3 && out.length < count; index++) {
      const flat = await timed(
        runScript<string[]>(
          redis(),
          'reclaim',
          [keys.streams[index] as string],
          [GROUP, consumer, config.visibilityTimeoutMs, reclaimCursors[index] as string, count - out.length],
        ),
        'reclaiming stale entries',
      )
      reclaimCursors[index] = String(flat[0])
      for (let i = 1; i + 4 < flat.length; i += 5) {
        out.push({
          streamIndex: index + 1,
          entryId: flat[i] as string,
          jobId: flat[i + 1] as string,
          payload: flat[i + 2] as string,
          rcpt: flat[i + 3] as string,
          deliveries: Number(flat[i + 4]),
        })
      }
    }
    return out
  }

  /**
   * Entries pending for this consumer in Redis that it does not hold in memory: a fetch whose
   * reply was lost when the connection dropped. Taken back at once instead of after the
   * visibility timeout.
   */
  async function recoverOwn(count: number): Promise<Delivery[]> {
    const out: Delivery[] = []
    for (let index = 0; index < 3 && out.length < count; index++) {
      const stream = keys.streams[index] as string
      const pending = (await timed(
        redis().xpending(stream, GROUP, '-', '+', 1000, consumer),
        'recovering entries',
      )) as [string, string, number, number][]
      const lost = pending.filter(([entryId]) => !held.has(heldKey(index + 1, entryId))).slice(0, count - out.length)
      if (lost.length === 0) continue
      const deliveries = new Map(lost.map(([entryId, , , times]) => [entryId, Number(times)]))
      const claimed = (await timed(
        redis().xclaim(stream, GROUP, consumer, 0, ...deliveries.keys()),
        'recovering entries',
      )) as ([string, string[]] | null)[]
      for (const entry of claimed) {
        if (!entry) continue
        const [entryId, fields] = entry
        out.push({
          streamIndex: index + 1,
          entryId,
          ...entryFields(fields),
          deliveries: (deliveries.get(entryId) ?? 0) + 1,
        })
      }
    }
    return out
  }

  /** Checks entries delivered again (or read by a blocking read) against their job's status. */
  async function activate(deliveries: Delivery[]): Promise<Work[]> {
    const scriptKeys = [...keys.streams, keys.dead, keys.suppressed, ...deliveries.map((d) => keys.status(d.jobId))]
    const args: (string | number)[] = [GROUP, Date.now(), config.maxDeliveries]
    for (const delivery of deliveries) {
      args.push(
        delivery.streamIndex,
        delivery.entryId,
        delivery.jobId,
        delivery.deliveries,
        delivery.payload === '' ? '0' : '1',
        delivery.rcpt,
      )
    }
    const replies = await timed(
      runScript<[string, number, string][]>(redis(), 'activate', scriptKeys, args),
      'checking fetched jobs',
    )
    const work: Work[] = []
    replies.forEach(([verdict, attempts, suppressed], index) => {
      const delivery = deliveries[index] as Delivery
      if (verdict === 'send' || verdict === 'over') {
        work.push({ delivery, verdict, attempts: Number(attempts), suppressed: splitList(suppressed) })
      } else if (verdict === 'poison') {
        emit('dead', { id: delivery.jobId, job: null, attempts: 0, error: 'stream entry has no job data' })
      }
    })
    return work
  }

  // ---- recording outcomes -----------------------------------------------------------------

  function record(delivery: Delivery, job: EmailJob | null, attempts: number, outcome: Outcome): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      finishedQueue.push({ delivery, job, attempts, outcome, resolve, reject })
      // Started on the next turn of the event loop, so that the sends finishing now share one write.
      if (!flushing) flushing = new Promise<void>((next) => setImmediate(next)).then(flushLoop)
    })
  }

  /** Writes recorded outcomes in as few calls as possible, retrying through Redis outages. */
  async function flushLoop(): Promise<void> {
    let failures = 0
    while (finishedQueue.length > 0) {
      if (abandoned) {
        for (const item of finishedQueue.splice(0)) item.reject(new MailstreamError('E_CLOSED', 'worker stopped'))
        break
      }
      const batch = finishedQueue.slice(0, 500)
      try {
        const applied = await writeOutcomes(batch)
        finishedQueue.splice(0, batch.length)
        failures = 0
        for (const [index, item] of batch.entries()) item.resolve(applied[index] === true)
      } catch (error) {
        failures++
        noteRedisError(error, 'recording send results failed, retrying', failures)
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)))
      }
    }
    flushing = undefined
  }

  /**
   * Records outcomes with one script call: statuses, acknowledgements, counters, batch progress,
   * and the histogram increments since the last call (lost, never repeated, if that call fails).
   */
  async function writeOutcomes(batch: Finished[]): Promise<boolean[]> {
    const statusKeys: string[] = []
    const batchKeys = new Map<string, number>()
    const args: (string | number)[] = [GROUP, Date.now(), config.statusTtlSeconds, batch.length, 0]
    for (const { delivery, job, attempts, outcome } of batch) {
      statusKeys.push(keys.status(delivery.jobId))
      let batchIndex = 0
      if (job?.batchId !== undefined) {
        batchIndex = batchKeys.get(job.batchId) ?? batchKeys.size + 1
        batchKeys.set(job.batchId, batchIndex)
      }
      args.push(outcome.kind, delivery.streamIndex, delivery.entryId, delivery.jobId, attempts, batchIndex)
      // The payload goes back into Redis only when the job lives on (retry) or is kept (dead letter).
      switch (outcome.kind) {
        case 'sent':
          args.push(outcome.messageId)
          break
        case 'suppressed':
          args.push(outcome.reason)
          break
        case 'dead':
          args.push(outcome.error, delivery.payload)
          break
        case 'retry':
        case 'throttle':
          args.push(outcome.dueAt, outcome.error, delivery.payload, delivery.rcpt)
          break
      }
    }
    const batchIds = [...batchKeys.keys()]
    args[4] = batchIds.length
    for (const batchId of batchIds) args.push(batchId, keys.progress(batchId))
    for (const [field, by] of metrics.take()) args.push(field, by)
    const scriptKeys = [
      ...keys.streams,
      keys.delayed,
      keys.dead,
      keys.stats,
      keys.metrics,
      ...statusKeys,
      ...batchIds.map((batchId) => keys.batch(batchId)),
    ]
    const applied = await timed(runScript<number[]>(redis(), 'finish', scriptKeys, args), 'recording send results')
    return applied.map((flag) => flag === 1)
  }

  // ---- sending ----------------------------------------------------------------------------

  /** Data every job of a batch shares (`enqueueBatch` stores it once), read once per batch. */
  const batchData = createBatchDataCache((batchId) =>
    timed(redis().hget(keys.batch(batchId), BATCH_DATA_FIELD), 'reading batch data'),
  )

  /** A job that names a template: render it, then build the message from what it gives. */
  async function renderMessage(job: EmailJob, suppressed: ReadonlySet<string>): Promise<EmailMessage> {
    if (!config.templates) {
      throw new MailstreamError(
        'E_CONFIG',
        `job ${job.id} names template '${job.template}' but the worker has no templates`,
        {
          field: 'templates',
        },
      )
    }
    const shared = job.batchId !== undefined ? await batchData.get(job.batchId) : undefined
    const data = shared ? { ...shared, ...job.data } : (job.data ?? {})
    const rendered = await config.templates.render(job.template as string, data, {
      ...(job.locale !== undefined && { locale: job.locale }),
      job: { id: job.id, type: job.type, to: job.to, ...(job.batchId !== undefined && { batchId: job.batchId }) },
    })
    return buildMessage(job, suppressed, rendered)
  }

  function buildMessage(job: EmailJob, suppressed: ReadonlySet<string>, rendered?: RenderedEmail): EmailMessage {
    const subject = job.subject ?? rendered?.subject
    if (!subject) throw new MailstreamError('E_TEMPLATE', `job ${job.id} has no subject`, { field: 'subject' })
    const keep = (list: Address[] | undefined) =>
      suppressed.size === 0 ? list : list?.filter((address) => !suppressed.has(address.address.toLowerCase()))
    const message: EmailMessage = {
      jobId: job.id,
      type: job.type,
      priority: job.priority,
      to: keep(job.to) ?? [],
      subject,
    }
    const from = job.from ?? defaultFrom
    const cc = keep(job.cc)
    const bcc = keep(job.bcc)
    const html = rendered ? rendered.html : job.html
    const text = rendered ? rendered.text : job.text
    const headers = rendered?.headers ? { ...rendered.headers, ...job.headers } : job.headers
    if (from) message.from = from
    if (cc?.length) message.cc = cc
    if (bcc?.length) message.bcc = bcc
    if (job.replyTo) message.replyTo = job.replyTo
    if (html !== undefined) message.html = html
    if (text !== undefined) message.text = text
    if (headers) message.headers = headers
    if (job.attachments) message.attachments = job.attachments
    if (job.tags) message.tags = job.tags
    if (job.batchId !== undefined) message.batchId = job.batchId
    return message
  }

  function classify(error: unknown): Classified {
    try {
      return classifyKnown(error)
    } catch {
      return { retry: 'later', pause: false } // a hostile thrown value (a throwing Proxy): retried, counted
    }
  }

  function classifyKnown(error: unknown): Classified {
    if (error instanceof TransportError) {
      return {
        retry: error.retry,
        pause: error.pause,
        ...(error.retryAfterMs !== undefined && {
          retryAfterMs: error.retryAfterMs,
        }),
      }
    }
    if (error instanceof MailstreamError && ['E_TEMPLATE', 'E_CONFIG', 'E_VALIDATION'].includes(error.code)) {
      return { retry: 'never', pause: false }
    }
    // A stack overflow (deeply nested input) fails the same way every time.
    if (error instanceof RangeError) return { retry: 'never', pause: false }
    // Unknown errors (network, bugs in a custom transport) are retried: losing mail is worse.
    return { retry: 'later', pause: false }
  }

  /**
   * Sends share one AbortController per window of `sendTimeoutMs / 100` ms: sends that start
   * together time out together, and a batch of sends costs one controller and one timer.
   */
  interface SendWindow {
    controller: AbortController
    openedAt: number
    active: number
    timer: NodeJS.Timeout
    rejects: Set<(reason: unknown) => void>
  }
  const windows = new Set<SendWindow>()
  const windowMs = Math.max(1, Math.floor(config.sendTimeoutMs / 100))
  let currentWindow: SendWindow | undefined

  function abortWindow(window: SendWindow, reason: unknown): void {
    window.controller.abort(reason)
    for (const reject of window.rejects) reject(reason)
    closeWindow(window)
  }

  function closeWindow(window: SendWindow): void {
    clearTimeout(window.timer)
    windows.delete(window)
    if (currentWindow === window) currentWindow = undefined
  }

  function openWindow(): SendWindow {
    const now = Date.now()
    if (currentWindow && now - currentWindow.openedAt < windowMs) return currentWindow
    if (currentWindow?.active === 0) closeWindow(currentWindow)
    const controller = new AbortController()
    // Every send of the window listens to this signal (an SDK request adds one listener or
    // more): that is by design, not a leak, and the signal goes away with its window.
    setMaxListeners(0, controller.signal)
    const window: SendWindow = {
      controller,
      openedAt: now,
      active: 0,
      rejects: new Set(),
      timer: setTimeout(() => {
        abortWindow(window, new TransportError(`send timed out after ${config.sendTimeoutMs} ms`, { retry: 'later' }))
      }, config.sendTimeoutMs),
    }
    window.timer.unref()
    windows.add(window)
    currentWindow = window
    return window
  }

  async function sendWithTimeout(message: EmailMessage, attempt: number): Promise<SendResult> {
    const window = openWindow()
    window.active++
    let cutOff: ((reason: unknown) => void) | undefined
    try {
      const result = await new Promise<SendResult>((resolve, reject) => {
        // A transport that ignores the signal is still cut off when its window is aborted.
        cutOff = reject
        window.rejects.add(reject)
        try {
          transport.send(message, { signal: window.controller.signal, attempt }).then(resolve, reject)
        } catch (error) {
          reject(error)
        }
      })
      if (!result || typeof result.messageId !== 'string') {
        throw new TransportError(`transport ${transport.name} returned no messageId`, { retry: 'later' })
      }
      return result
    } finally {
      window.rejects.delete(cutOff as (reason: unknown) => void)
      window.active--
      if (window.active === 0 && window !== currentWindow) closeWindow(window)
    }
  }

  /** One try of a job: its message, its charge against the rate limit, its send. Throws what failed. */
  async function attempt(
    work: Work,
    job: EmailJob,
    attempts: number,
    suppressed: ReadonlySet<string>,
  ): Promise<Outcome | typeof ABANDONED> {
    const message = job.template === undefined ? buildMessage(job, suppressed) : await renderMessage(job, suppressed)
    // Charged per recipient left after the suppression check, right before the send.
    const waitStartedAt = performance.now()
    const charged = pacing ? await pacing.charge(work, recipientCount(message)) : undefined
    const waitedMs = performance.now() - waitStartedAt
    if (pacing && waitedMs >= 1) metrics.observe('rate_limit_wait', waitedMs)
    if (charged?.kind === 'abandoned') return ABANDONED
    // A full daily quota (or a long wait for units) re-delays the job without using an attempt.
    if (charged?.kind === 'delay')
      return { kind: 'throttle', dueAt: Date.now() + charged.retryAfterMs, error: charged.reason }
    const sendStartedAt = performance.now()
    try {
      const { messageId, rejected } = await sendWithTimeout(message, attempts)
      metrics.observe('delivery_latency', Date.now() - job.createdAt)
      return { kind: 'sent', messageId, ...(rejected?.length && { rejected }) }
    } finally {
      metrics.observe('send_duration', performance.now() - sendStartedAt)
    }
  }

  async function processWork(work: Work): Promise<void> {
    if (abandoned) return // stopped hard before this job started: it stays pending for another worker
    const { delivery } = work
    const job = parseJob(delivery.payload)
    let attempts = work.attempts
    let outcome: Outcome
    let failure: { error: Error; retry: RetryClass } | undefined
    if (!job) {
      outcome = { kind: 'dead', error: 'job payload is not readable JSON' }
    } else if (work.verdict === 'over') {
      outcome = {
        kind: 'dead',
        error: `delivered ${delivery.deliveries} times without finishing (maxDeliveries ${config.maxDeliveries})`,
      }
    } else {
      const suppressed = work.suppressed.length > 0 ? new Set(work.suppressed) : NOTHING_SUPPRESSED
      const everyRecipientSuppressed =
        suppressed.size > 0 &&
        [...job.to, ...(job.cc ?? []), ...(job.bcc ?? [])].every((address) =>
          suppressed.has(address.address.toLowerCase()),
        )
      if (everyRecipientSuppressed) {
        outcome = {
          kind: 'suppressed',
          reason: `suppressed: ${work.suppressed.join(', ')}`,
        }
      } else {
        // Every try counts, a failed render as much as a failed send: nothing is retried without end.
        attempts++
        try {
          const tried = await attempt(work, job, attempts, suppressed)
          if (tried === ABANDONED) return // stopped hard while waiting: the entry stays pending
          outcome = tried
          if (outcome.kind === 'throttle') attempts-- // a throttle does not use an attempt
        } catch (error) {
          if (abandoned) return // stopped hard: the entry stays pending for another worker
          const { retry, retryAfterMs, pause } = classify(error)
          const reason = describeError(error)
          failure = { error: error instanceof Error ? error : new Error(reason), retry }
          if (retry === 'throttle') {
            attempts--
            pacing?.throttled()
            const delay = Math.max(retryAfterMs ?? 0, jitter(config.throttleDelayMs))
            outcome = { kind: 'throttle', dueAt: Date.now() + delay, error: reason }
          } else if (retry === 'later' && attempts < job.maxAttempts) {
            const backoff = Math.min(config.backoff.maxMs, config.backoff.baseMs * 2 ** attempts)
            outcome = { kind: 'retry', dueAt: Date.now() + Math.max(retryAfterMs ?? 0, jitter(backoff)), error: reason }
          } else {
            outcome = { kind: 'dead', error: reason }
          }
          if (pause) pauseWorker(`transport ${transport.name} asked to pause: ${reason}`)
        }
      }
    }
    if (abandoned) return

    // The send is over: its slot is free while the outcome waits to be written.
    releaseSlot(work)
    let applied: boolean
    try {
      applied = await record(delivery, job, attempts, outcome)
    } catch {
      return // stopped before the result could be written: the entry stays pending
    }
    processedSinceDrain++
    if (failure) {
      emit('failed', {
        id: delivery.jobId,
        job,
        attempts,
        error: failure.error,
        retry: failure.retry,
        final: outcome.kind === 'dead',
      })
    }
    if (!applied) return // another delivery of the same job finished first
    if (outcome.kind === 'sent') {
      emit('sent', {
        id: delivery.jobId,
        job: job as EmailJob,
        messageId: outcome.messageId,
        ...(outcome.rejected && { rejected: outcome.rejected }),
        attempts,
      })
    } else if (outcome.kind === 'retry' || outcome.kind === 'throttle') {
      if (outcome.dueAt < nextDueAt) {
        nextDueAt = outcome.dueAt
        schedulerWake.wake()
      }
      emit('retrying', {
        id: delivery.jobId,
        job: job as EmailJob,
        attempts,
        error: outcome.error,
        retryAt: outcome.dueAt,
        throttled: outcome.kind === 'throttle',
      })
    } else if (outcome.kind === 'dead') {
      emit('dead', { id: delivery.jobId, job, attempts, error: outcome.error })
    } else {
      emit('suppressed', {
        id: delivery.jobId,
        job: job as EmailJob,
        addresses: work.suppressed,
      })
    }
  }

  const sending = new Set<Work>()

  function releaseSlot(work: Work): void {
    if (sending.delete(work)) dispatcherWake.wake()
  }

  function startWork(work: Work): void {
    // Never the same entry twice at once: the copy in flight finishes it.
    const { streamIndex, entryId } = work.delivery
    if (held.has(heldKey(streamIndex, entryId))) return
    inFlight++
    sending.add(work)
    held.set(heldKey(streamIndex, entryId), { streamIndex, entryId, keptAt: Date.now() })
    if (pacing && work.verdict === 'send') pacing.hold(work, expectedRecipients(work))
    void runWork(work)
  }

  /** One job from start to finish; whatever happens, its slot and its hold on the entry end here. */
  async function runWork(work: Work): Promise<void> {
    try {
      await processWork(work)
    } catch (error) {
      // Its entry is still pending here: own-recovery takes it back instead of the visibility timeout.
      lostReplies = true
      emit('error', toMailstreamError(error, `job ${work.delivery.jobId} failed unexpectedly`))
    } finally {
      inFlight--
      releaseSlot(work)
      pacing?.release(work)
      held.delete(heldKey(work.delivery.streamIndex, work.delivery.entryId))
      dispatcherWake.wake()
      if (!running && inFlight === 0) keepWake.wake() // the keeper ends with the last job of a stop
      if (inFlight === 0 && idle && processedSinceDrain > 0 && running) {
        emit('drained', { processed: processedSinceDrain })
        processedSinceDrain = 0
      }
    }
  }

  // ---- loops ------------------------------------------------------------------------------

  const minBatch = Math.max(1, Math.floor(config.concurrency / 2))
  let batchWaitSince = 0
  const reclaimEveryMs = Math.min(config.visibilityTimeoutMs / 2, 30_000)

  async function dispatch(): Promise<void> {
    let failures = 0
    while (running) {
      try {
        if (paused) {
          await dispatcherWake.wait(1000)
          continue
        }
        // Slots are sends in progress; outcomes waiting to be written hold no slot, but are
        // capped at three more rounds so that a slow Redis slows fetching down.
        let free = Math.min(config.concurrency - sending.size, 4 * config.concurrency - inFlight)
        if (free <= 0) {
          await dispatcherWake.wait(1000)
          continue
        }
        // With fast sends, wait up to 2 ms for more free slots instead of fetching one job per
        // round trip; with slow sends (a real provider) the wait is small beside a send.
        if (sending.size > 0 && free < minBatch) {
          const now = performance.now()
          if (batchWaitSince === 0) batchWaitSince = now
          if (now - batchWaitSince < 2) {
            await dispatcherWake.wait(2)
            continue
          }
        }
        batchWaitSince = 0
        if (pacing) {
          // Fetch no more jobs than there are recipients free soon: a job waiting for units would hold
          // its entry, and a high-priority job arriving meanwhile would wait behind it.
          const allowance = await pacing.allowance()
          if (allowance.units <= 0) {
            await dispatcherWake.wait(Math.min(allowance.waitMs, 1000))
            continue
          }
          free = Math.min(free, allowance.units)
        }
        if (!groupsReady) await ensureGroups()
        const work: Work[] = []
        const check: Delivery[] = []
        if (lostReplies) {
          check.push(...(await recoverOwn(free)))
          lostReplies = check.length === free // more may be left
        }
        if (check.length < free && Date.now() - lastReclaimAt >= reclaimEveryMs) {
          lastReclaimAt = Date.now()
          check.push(...(await reclaim(free - check.length)))
        }
        if (check.length < free) {
          const fetched = await fetchStrict(free - check.length)
          work.push(...fetched.ready)
          check.push(...fetched.check)
        }
        if (work.length === 0 && check.length === 0) {
          idle = true
          if (inFlight === 0 && processedSinceDrain > 0) {
            emit('drained', { processed: processedSinceDrain })
            processedSinceDrain = 0
          }
          if (!running) break
          const untilReclaim = lastReclaimAt + reclaimEveryMs - Date.now()
          check.push(...(await fetchBlocking(free, Math.max(10, Math.min(config.blockMs, untilReclaim)))))
          if (check.length === 0) continue
        }
        idle = false
        if (check.length > 0) work.unshift(...(await activate(check)))
        for (const item of work) startWork(item)
        failures = 0
      } catch (error) {
        if (!running) break
        failures++
        lostReplies = true
        noteRedisError(error, 'fetching jobs failed, retrying', failures)
        await dispatcherWake.wait(Math.min(5000, 100 * 2 ** Math.min(failures, 6)))
      }
    }
  }

  async function promoteDue(): Promise<void> {
    const connection = redis()
    for (;;) {
      const now = Date.now()
      const ids = await timed(
        connection.zrangebyscore(keys.delayed, '-inf', now, 'LIMIT', 0, 500),
        'promoting due jobs',
      )
      if (ids.length === 0) break
      await timed(
        runScript<number>(
          connection,
          'promote',
          [keys.delayed, ...keys.streams, keys.dead, ...ids.map((id) => keys.status(id))],
          [now, ...ids],
        ),
        'promoting due jobs',
      )
      if (ids.length < 500) break
    }
    const next = await timed(connection.zrange(keys.delayed, 0, 0, 'WITHSCORES'), 'promoting due jobs')
    nextDueAt = next[1] !== undefined ? Number(next[1]) : Number.POSITIVE_INFINITY
  }

  async function schedule(): Promise<void> {
    let failures = 0
    while (running) {
      let wait = config.schedulerIntervalMs
      try {
        await promoteDue()
        failures = 0
        wait = Math.max(0, Math.min(config.schedulerIntervalMs, nextDueAt - Date.now()))
      } catch (error) {
        if (!running) break
        failures++
        noteRedisError(error, 'promoting scheduled jobs failed, retrying', failures)
        wait = Math.min(5000, 100 * 2 ** Math.min(failures, 6))
      }
      if (running) await schedulerWake.wait(wait)
    }
  }

  /**
   * Resets the idle time of entries held for a third of the visibility timeout, so that no other
   * worker takes over a job this one is still working on (its outcome waiting for Redis, say).
   */
  async function keepHeld(): Promise<void> {
    const everyMs = Math.max(10, Math.floor(config.visibilityTimeoutMs / 3))
    let failures = 0
    // Also while stop() waits for the last outcomes to be written.
    while (running || (inFlight > 0 && !abandoned)) {
      await keepWake.wait(everyMs)
      const now = Date.now()
      const args: (string | number)[] = [GROUP, consumer]
      const kept: { keptAt: number }[] = []
      for (const hold of held.values()) {
        if (now - hold.keptAt < everyMs) continue
        args.push(hold.streamIndex, hold.entryId)
        kept.push(hold)
      }
      if (kept.length === 0 || abandoned) continue
      try {
        await timed(runScript<number>(redis(), 'keep', keys.streams, args), 'keeping held entries')
        for (const hold of kept) hold.keptAt = now
        failures = 0
      } catch (error) {
        noteRedisError(error, 'keeping held entries failed, retrying', ++failures)
      }
    }
  }

  function pauseWorker(reason: string): void {
    if (paused) return
    paused = true
    void interruptBlockingRead()
    emit('paused', { reason })
  }

  /** The node and client id of the blocking connection, for CLIENT UNBLOCK. */
  async function blockingClient(): Promise<{ node: Redis; id: number } | undefined> {
    if (!client) return undefined
    if (!isCluster(client)) return blockingId === undefined ? undefined : { node: client, id: blockingId }
    // On Cluster the blocking client has a named connection to several nodes; the read blocks on
    // the one that owns the queue's slot.
    for (const node of client.nodes('master')) {
      const list = String(await timed(node.client('LIST'), 'finding the blocking connection'))
      const line = list
        .split('\n')
        .find((entry) => entry.includes(` name=${blockingName} `) && / flags=\S*b/.test(entry))
      const id = line && /(?:^|\s)id=(\d+)/.exec(line)?.[1]
      if (id) return { node, id: Number(id) }
    }
    return undefined
  }

  /** Ends the dispatcher's blocking read early, so that stop() and pause() take effect at once. */
  async function interruptBlockingRead(): Promise<void> {
    // CLIENT UNBLOCK can reach Redis just before the read it targets: repeat while one is under way.
    for (let tries = 0; blockingRead && tries < 200; tries++) {
      try {
        const target = await blockingClient()
        if (target) await timed(target.node.client('UNBLOCK', target.id), 'ending the blocking read')
      } catch {
        return // the read ends by itself within blockMs
      }
      if (blockingRead) await sleep(10)
    }
  }

  function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const deadline = Date.now() + timeoutMs
      const check = () => {
        if (predicate()) return resolve(true)
        if (Date.now() >= deadline) return resolve(false)
        setTimeout(check, 10)
      }
      check()
    })
  }

  return {
    get running() {
      return running
    },
    get paused() {
      return paused || quotaPaused
    },
    get pace() {
      return pacing?.pace
    },
    get inFlight() {
      return inFlight
    },
    get consumer() {
      return consumer
    },

    async start() {
      if (running) return
      if (stopping) await stopping
      const resolved = resolveRedis(config.redis)
      client = resolved.client
      ownsClient = resolved.owned
      checkClusterPrefix(client, config.prefix, 'createEmailWorker')
      defineScripts(client)
      pacingClient = boundedClient(client, config.commandTimeoutMs)
      blocking = duplicateForBlocking(client, blockingName)
      blocking.on('error', () => {
        // Reported through the loops' own failures as `error` events.
      })
      blocking.on('close', () => {
        blockingId = undefined
      })
      running = true
      stopping = undefined
      abandoned = false
      groupsReady = false
      lostReplies = true
      // The host's boot never waits on an outage: with Redis unreachable the loops start at once and
      // create the groups when it is back; a frozen Redis costs at most commandTimeoutMs here.
      if (!['reconnecting', 'close', 'end'].includes(client.status)) {
        try {
          await ensureGroups()
        } catch (error) {
          noteRedisError(error, 'creating consumer groups failed, retrying in the background')
        }
      }
      if (!running) return // stopped meanwhile
      dispatcherDone = dispatch()
      schedulerDone = schedule()
      void keepHeld()
    },

    stop({ timeoutMs = 30_000 } = {}) {
      if (stopping) return stopping
      if (!running) return Promise.resolve()
      stopping = (async () => {
        const deadline = Date.now() + timeoutMs
        running = false
        dispatcherWake.wake()
        schedulerWake.wake()
        keepWake.wake()
        // The dispatcher may be activating a last batch: wait for it, then for every job in flight.
        void interruptBlockingRead()
        let timer: NodeJS.Timeout | undefined
        const loopsEnded = await Promise.race([
          Promise.all([dispatcherDone, schedulerDone]).then(() => true),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(false), timeoutMs)
          }),
        ])
        clearTimeout(timer)
        const clean = await waitUntil(
          () => inFlight === 0 && finishedQueue.length === 0 && !flushing,
          Math.max(0, deadline - Date.now()),
        )
        const left = inFlight
        if (!clean) {
          abandoned = true
          pacing?.interrupt()
          for (const window of [...windows]) {
            abortWindow(window, new MailstreamError('E_CLOSED', 'worker stopped before the send finished'))
          }
          dispatcherWake.wake()
        }
        if (blocking) {
          blocking.disconnect()
          blocking = undefined
        }
        if (ownsClient && client) {
          // QUIT only to a Redis that answered the loops, within what is left of timeoutMs; else cut.
          const owned = client
          const remainingMs = deadline - Date.now()
          if (clean && loopsEnded && remainingMs > 0) await quit(owned, remainingMs)
          else owned.disconnect()
        }
        client = undefined
        pacingClient = undefined
        keepWake.wake() // the keeper sees the stop and ends (within one bounded call)
        emit('stopped', { abandoned: clean ? 0 : left })
      })()
      return stopping
    },

    pause(reason = 'paused by the host') {
      pauseWorker(reason)
    },

    resume() {
      if (!paused) return
      paused = false
      dispatcherWake.wake()
      emit('resumed', {})
    },

    on(event, listener) {
      let set = listeners.get(event)
      if (!set) {
        set = new Set()
        listeners.set(event, set)
      }
      set.add(listener as (payload: never) => void)
      return () => {
        set.delete(listener as (payload: never) => void)
      }
    },
  }
}
