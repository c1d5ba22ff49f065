// Single and many-job enqueue: validate, pack as records, write through the enqueue script.
import { MailstreamError } from '../errors.js'
import { type EmailJob, recipientList, type ValidatedJob, validateJob, validateJobs } from '../job.js'
import type { AdvertisingProfile } from '../korea/advertising.js'
import { type EnqueueRecord, type EnqueueReply, enqueue, enqueueSettled } from '../lua/enqueue.js'
import { providersOfList, withProviders, withProvidersOfList } from '../providers/classify.js'
import type { MxClassifier } from '../providers/mx.js'
import type { RedisClient } from '../redis.js'
import { type JobStatusName, STATUS } from '../status.js'
import { endWith, startEnqueueManySpan, startEnqueueSpan } from '../telemetry/spans.js'
import { conflictError, jobFingerprint } from './idempotency.js'
import type { QueueInternals } from './internals.js'
import { holdJob } from './schedule.js'
import type { EmailQueue, EnqueueResult, QueueContext, TemplateCheck } from './types.js'

/** Jobs per pipeline: bounds the memory of a big `enqueueMany` and of one coalesced write. */
const JOBS_PER_PIPELINE = 5000

/**
 * From this many calls in one turn, they go in two script calls, not one: Redis runs the first
 * while this process encodes the second, and the two halves of the callers come back at two
 * moments, so that from then on two groups are in flight, one in Redis while the other is here.
 * Measured at 50 callers: 1.45x the calls per second of one script call, for the same CPU per job.
 */
const SPLIT_FROM = 32

/** The providers an MX lookup found for a job's unknown domains (`providers: { mx: true }`), until it is written. */
const mxProviders = new WeakMap<ValidatedJob, ReadonlyMap<string, string>>()

/** Classifies the unknown domains of each job by their MX hosts (cached in Redis), for `toRecord`. */
async function classifyMx(mx: MxClassifier, list: readonly ValidatedJob[]): Promise<void> {
  await Promise.all(
    list.map(async (validated) => {
      const extra = await mx.classify(recipientList(validated.job))
      if (extra.size > 0) mxProviders.set(validated, extra)
    }),
  )
}

/** A payload (a JSON object) with the traceparent of its enqueue span as `trace`. */
export const withTrace = (payload: string, trace: string): string => `${payload.slice(0, -1)},"trace":"${trace}"}`

/**
 * A validated job as the script takes it, with its recipients per mailbox provider in the payload
 * (`providers`, from the recipient list it needs anyway; for the worker's per-provider pacing); with
 * strict idempotency, with its fingerprint; when traced, with its enqueue span's traceparent in the
 * payload (for the worker) and the record (for the status hash, for the webhook handler).
 */
function toRecord(validated: ValidatedJob, strict: boolean, trace?: string): EnqueueRecord {
  const { job, payload, dueAt } = validated
  const rcpt = recipientList(job)
  const extra = mxProviders.get(validated)
  const classified =
    extra === undefined ? withProvidersOfList(payload, rcpt) : withProviders(payload, providersOfList(rcpt, extra))
  const record: EnqueueRecord = {
    id: job.id,
    payload: trace === undefined ? classified : withTrace(classified, trace),
    dueAt,
    priority: job.priority,
    type: job.type,
    maxAttempts: job.maxAttempts,
    batchId: job.batchId ?? '',
    rcpt,
    idempotencyKey: job.idempotencyKey,
  }
  if (strict && job.idempotencyKey !== undefined) record.fingerprint = jobFingerprint(job)
  if (trace !== undefined) record.trace = trace
  return record
}

/** The result of one reply; a duplicate found only through its idempotency key costs one read more. */
function toResult(
  { id, status, created }: EnqueueReply,
  via: RedisClient,
  context: QueueContext,
): EnqueueResult | Promise<EnqueueResult> {
  if (created === 'new') return { id, status: status as JobStatusName, duplicate: false }
  if (created === 'cancelled') return { id, status: 'cancelled', duplicate: false }
  if (status) return { id, status: status as JobStatusName, duplicate: true }
  return via
    .hget(context.keys.status(id), STATUS.status)
    .then((current) => ({ id, status: (current ?? 'unknown') as JobStatusName, duplicate: true }))
}

interface Waiting {
  record: EnqueueRecord
  resolve(result: EnqueueResult | Promise<EnqueueResult>): void
  reject(error: unknown): void
}

type Settled = EnqueueReply | MailstreamError

/**
 * Writes the `enqueue` calls made in one turn of the event loop together: one script call (two
 * from SPLIT_FROM calls) for all of them, instead of one each. Every call is validated before it joins and
 * gets its own reply. The script runs a call's records in order and stops at an error with the
 * earlier ones written, so the records of a failed call are run again one per script call: the
 * record at fault gets its error alone, and one that the failed call had written (its status hash
 * made at that call's `now`) is reported as written, not as a duplicate of itself. Each caller's
 * promise is bounded, as before, by the queue's method guard.
 */
export function createEnqueueCoalescer(context: QueueContext) {
  const { client, keys } = context
  let waiting: Waiting[] = []

  const call = (records: readonly EnqueueRecord[], now: number) => ({
    now,
    idempotencyTtlSeconds: context.idempotencyTtlSeconds,
    records,
  })

  /** The replies, for one record each, of the records whose shared call failed. */
  async function again(records: readonly EnqueueRecord[], failedAt: number): Promise<Settled[]> {
    const settled = await enqueueSettled(client, keys, call(records, Date.now()), 1)
    return Promise.all(
      settled.map(async (reply, index) => {
        const record = records[index] as EnqueueRecord
        if (reply instanceof MailstreamError || reply.created !== 'duplicate' || reply.id !== record.id) return reply
        const [status, createdAt] = await client.hmget(keys.status(record.id), STATUS.status, STATUS.createdAt)
        return status && createdAt === String(failedAt) ? { id: record.id, status, created: 'new' as const } : reply
      }),
    )
  }

  async function writeChunk(chunk: readonly Waiting[]): Promise<void> {
    const records = chunk.map((one) => one.record)
    let settled: Settled[]
    try {
      const now = Date.now()
      settled = await enqueueSettled(client, keys, call(records, now))
      const failed = settled.flatMap((reply, index) => (reply instanceof MailstreamError ? [index] : []))
      if (failed.length) {
        const retried = await again(
          failed.map((index) => records[index] as EnqueueRecord),
          now,
        )
        failed.forEach((index, at) => {
          settled[index] = retried[at] as Settled
        })
      }
    } catch (error) {
      for (const one of chunk) one.reject(error)
      return
    }
    chunk.forEach((one, index) => {
      const reply = settled[index]
      if (reply === undefined) one.reject(new MailstreamError('E_REDIS', 'enqueue failed: no reply'))
      else if (reply instanceof MailstreamError) one.reject(reply)
      else if (reply.created === 'conflict') one.reject(conflictError(one.record.idempotencyKey as string, reply.id))
      else one.resolve(toResult(reply, client, context))
    })
  }

  /** True from the first call of a turn of the event loop until the flush at its end. */
  let gathering = false

  function flush(): void {
    gathering = false
    const batch = waiting
    waiting = []
    const size = Math.min(JOBS_PER_PIPELINE, batch.length >= SPLIT_FROM ? Math.ceil(batch.length / 2) : batch.length)
    for (let start = 0; start < batch.length; start += size) {
      void writeChunk(batch.slice(start, start + size))
    }
  }

  return {
    write(validated: ValidatedJob, trace?: string): Promise<EnqueueResult> {
      const record = toRecord(validated, context.strictIdempotency, trace)
      return new Promise<EnqueueResult>((resolve, reject) => {
        const one: Waiting = { record, resolve, reject }
        // Off line, each call goes to the client's offline queue at once (ioredis drops a QUIT when
        // nothing is queued).
        if (client.status !== 'ready') {
          void writeChunk([one])
          return
        }
        // The calls of one turn of the event loop are sent together when it ends (setImmediate: a
        // lone call waits only for the rest of its turn); close() flushes them before its QUIT.
        waiting.push(one)
        if (!gathering) {
          gathering = true
          setImmediate(flush)
        }
      })
    },
    /** Sends the calls gathered so far now; `close()` should call it before QUIT, so none goes after it. */
    flush,
  }
}

/** The `enqueue` calls of one queue, gathered for each turn of the event loop. */
export type EnqueueCoalescer = ReturnType<typeof createEnqueueCoalescer>

/**
 * Checks a job's template and data with the queue's renderer: `E_VALIDATION` naming `template` or
 * `data.<variable>` (the renderer's error as `cause`), so that nothing is written for it.
 */
export async function checkTemplate(
  templates: TemplateCheck,
  job: Pick<EmailJob, 'template' | 'data' | 'locale'>,
  lead = '',
  fieldLead = '',
  requiredData = true,
): Promise<void> {
  try {
    await templates.check(job.template as string, job.data ?? {}, { locale: job.locale, requiredData })
  } catch (cause) {
    if (!(cause instanceof MailstreamError) || cause.code !== 'E_TEMPLATE') throw cause
    // The renderer names a variable, or the template itself (its name, folder, html or compile).
    const own = cause.field === undefined || ['template', 'html', 'text', 'subject'].includes(cause.field)
    const field = own ? 'template' : cause.field === 'data' ? 'data' : `data.${cause.field}`
    throw new MailstreamError('E_VALIDATION', `${lead}${cause.message.replace('[mailstream] ', '')}`, {
      field: `${fieldLead}${field}`,
      cause,
    })
  }
}

/**
 * The advertising rules for the jobs of one call: ordinary jobs may not carry the `(광고)` mark, and
 * advertising ones are made ready by the profile; without a profile, an advertising job is refused.
 */
async function prepareAdvertising(
  profile: AdvertisingProfile | undefined,
  list: ValidatedJob[],
  now: number,
  many: boolean,
): Promise<void> {
  const advertising: ValidatedJob[] = []
  list.forEach((validated, index) => {
    const lead = many ? `jobs[${index}]: ` : ''
    const fieldLead = many ? `${index}.` : ''
    if (validated.job.advertising === undefined) profile?.checkOrdinary(validated.job, lead, fieldLead)
    else if (!profile) {
      throw new MailstreamError(
        'E_VALIDATION',
        `${lead}advertising: this queue has no advertising profile (createEmailQueue({ advertising: { sender, consent } }))`,
        { field: `${fieldLead}advertising` },
      )
    } else advertising.push(validated)
  })
  if (profile && advertising.length > 0) {
    if (!many) return profile.prepare(advertising, now)
    // Indexes in errors are the call's own: prepare each in place, looking consent up once.
    const indexed = list.flatMap((validated, index) => (validated.job.advertising !== undefined ? [index] : []))
    try {
      await profile.prepare(advertising, now, true)
    } catch (error) {
      throw reindexed(error, indexed)
    }
  }
}

/** An error naming `jobs[i]` of the advertising jobs, renamed to the index of the whole call. */
function reindexed(error: unknown, indexes: number[]): unknown {
  if (!(error instanceof MailstreamError) || error.field === undefined) return error
  const match = /^(\d+)\.(.*)$/.exec(error.field)
  if (!match) return error
  const index = indexes[Number(match[1])] ?? Number(match[1])
  const message = error.message.replace('[mailstream] ', '').replace(/^jobs\[\d+\]: /, '')
  return new MailstreamError(error.code, `jobs[${index}]: ${message}`, { field: `${index}.${match[2]}`, cause: error })
}

/** What an enqueue span says of its result. */
const enqueuedAttributes = (result: EnqueueResult) => ({
  'mailstream.job.status': result.status,
  'mailstream.duplicate': result.duplicate,
})

/** The stream every job of a call goes to; the queue's prefix when they go to several. */
function oneStream(keys: QueueContext['keys'], list: readonly ValidatedJob[]): string {
  const first = list[0]?.job.priority ?? 'normal'
  return list.every(({ job }) => job.priority === first) ? keys.stream(first) : keys.prefix
}

/** `enqueue` and `enqueueMany`. */
export function createEnqueue(
  context: QueueContext,
  coalescer: EnqueueCoalescer = createEnqueueCoalescer(context),
): Pick<EmailQueue, 'enqueue' | 'enqueueMany'> & Pick<QueueInternals, 'validate' | 'write'> {
  const { keys, assertOpen, tracing } = context

  /** `enqueueMany`: the jobs of a conflict (strict idempotency) are refused, the others written. */
  async function write(list: readonly ValidatedJob[], via: RedisClient, trace?: string): Promise<EnqueueResult[]> {
    const results: EnqueueResult[] = []
    let conflict: MailstreamError | undefined
    for (let start = 0; start < list.length; start += JOBS_PER_PIPELINE) {
      const records = list
        .slice(start, start + JOBS_PER_PIPELINE)
        .map((job) => toRecord(job, context.strictIdempotency, trace))
      const replies = await enqueue(via, keys, {
        now: Date.now(),
        idempotencyTtlSeconds: context.idempotencyTtlSeconds,
        records,
      })
      for (const [index, reply] of replies.entries()) {
        if (reply.created === 'conflict') {
          const key = (records[index] as EnqueueRecord).idempotencyKey as string
          conflict ??= conflictError(key, reply.id, start + index)
        } else results.push(await toResult(reply, via, context))
      }
    }
    if (conflict) throw conflict
    return results
  }

  /** What `enqueue` checks before it writes: the job, then its template with the queue's renderer. */
  function validate(input: unknown): ValidatedJob | Promise<ValidatedJob> {
    assertOpen()
    const validated = validateJob(input)
    if (context.hold) holdJob(context.hold, validated)
    const { templates } = context
    const templated = templates !== undefined && validated.job.template !== undefined
    // Only a queue with the advertising profile, or a job that says it is advertising, goes further.
    const advertising = context.advertising !== undefined || validated.job.advertising !== undefined
    const { mx } = context
    if (!templated && !advertising && !mx) return validated // nothing to wait for: the common path costs no extra turn
    return (async () => {
      if (templated) await checkTemplate(templates, validated.job)
      if (advertising) await prepareAdvertising(context.advertising, [validated], validated.job.createdAt, false)
      if (mx) await classifyMx(mx, [validated])
      return validated
    })()
  }

  return {
    async validate(input) {
      return validate(input)
    },

    async write(jobs) {
      assertOpen()
      return write(jobs, context.steps)
    },

    async enqueue(input) {
      const checked = validate(input)
      const validated = checked instanceof Promise ? await checked : checked
      // Without an SDK (or with tracing off) this is one check, and nothing is made per job.
      const span = startEnqueueSpan(tracing, keys.stream(validated.job.priority), validated.job, validated.dueAt)
      if (span === undefined) return coalescer.write(validated)
      return endWith(span, coalescer.write(validated, span.traceparent), enqueuedAttributes)
    },

    async enqueueMany(inputs) {
      assertOpen()
      const now = Date.now()
      const validated = validateJobs(inputs, now)
      if (context.hold) for (const one of validated) holdJob(context.hold, one)
      if (context.advertising !== undefined || validated.some(({ job }) => job.advertising !== undefined)) {
        await prepareAdvertising(context.advertising, validated, now, true)
      }
      const { templates } = context
      if (templates) {
        await Promise.all(
          validated.map(({ job }, index) =>
            job.template === undefined ? undefined : checkTemplate(templates, job, `jobs[${index}]: `, `${index}.`),
          ),
        )
      }
      if (context.mx) await classifyMx(context.mx, validated)
      const span = startEnqueueManySpan(tracing, 'enqueueMany', oneStream(keys, validated), {
        'messaging.batch.message_count': validated.length,
      })
      if (span === undefined) return write(validated, context.steps)
      return endWith(span, write(validated, context.steps, span.traceparent), (results) => ({
        'mailstream.enqueued.count': results.filter((result) => !result.duplicate).length,
      }))
    },
  }
}
