// `enqueueBatch`: recipients streamed into the jobs of one batch, in pipelined chunks with bounded memory.
import { MailstreamError } from '../errors.js'
import type { AdvertisingProfile } from '../korea/advertising.js'
import { type EnqueueRecord, enqueue } from '../lua/enqueue.js'
import { sealBatch } from '../lua/seal-batch.js'
import { endWith, startEnqueueManySpan } from '../telemetry/spans.js'
import {
  type BatchOptions,
  type BatchTemplate,
  type BuildRecipient,
  batchTemplate,
  checkBatchCall,
  type EnqueueBatchResult,
  toBatchRecord,
} from './batch-input.js'
import { openBatch } from './batch-state.js'
import { checkTemplate } from './enqueue.js'
import { withHolder } from './schedule.js'
import type { QueueContext } from './types.js'

export {
  type BatchOptions,
  type BatchRecipient,
  type BuildRecipient,
  batchJobId,
  type EnqueueBatchResult,
} from './batch-input.js'

/** Recipients per pipeline (10 enqueue script calls), and pipelines in flight at once. */
const CHUNK = 1000
const IN_FLIGHT = 3

const isThenable = (value: unknown): value is Promise<unknown> =>
  typeof value === 'object' && value !== null && typeof (value as Promise<unknown>).then === 'function'

/**
 * Writes chunks of records, at most IN_FLIGHT pipelines at once, counting what each reply says
 * into `result`. `stopped()` turns true when the batch turned out cancelled or a write failed.
 */
function createChunkWriter(context: QueueContext, result: EnqueueBatchResult, trace: string | undefined) {
  const inFlight = new Set<Promise<void>>()
  let failure: unknown
  let stop = false

  async function write(records: readonly EnqueueRecord[]): Promise<void> {
    // The payloads carry the trace already (in the template's shared middle); the status hashes get it here.
    if (trace !== undefined) for (const record of records) record.trace = trace
    const replies = await enqueue(context.steps, context.keys, {
      now: Date.now(),
      idempotencyTtlSeconds: context.idempotencyTtlSeconds,
      records,
    })
    for (const { created } of replies) {
      if (created === 'new') result.enqueued++
      else if (created === 'cancelled') stop = true
      else result.duplicates++
    }
  }

  return {
    stopped: () => stop,
    /** Starts writing `records`; waits only when IN_FLIGHT writes are under way. */
    async add(records: readonly EnqueueRecord[]): Promise<void> {
      const tracked = write(records)
        .catch((error) => {
          failure ??= error
          stop = true
        })
        .finally(() => inFlight.delete(tracked))
      inFlight.add(tracked)
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
    },
    /** Every write under way settled; throws the first failure. */
    async settle(): Promise<void> {
      await Promise.all(inFlight)
      if (failure !== undefined) throw failure
    },
    /** Waits for the writes under way without throwing (the caller is throwing already). */
    drain: () => Promise.all(inFlight),
  }
}

/** Feeds every recipient through `build` into records, a chunk at a time, until done or stopped. */
async function feed<R>(
  template: BatchTemplate,
  recipients: Iterable<R> | AsyncIterable<R>,
  build: BuildRecipient<R> | undefined,
  result: EnqueueBatchResult,
  writer: ReturnType<typeof createChunkWriter>,
  advertising: AdvertisingProfile | undefined,
): Promise<void> {
  let chunk: EnqueueRecord[] = []
  const flush = (): Promise<void> | undefined => {
    if (chunk.length === 0) return undefined
    const records = chunk
    chunk = []
    if (!advertising) return writer.add(records)
    // Only the recipients who consented are written; one lookup per chunk.
    return advertising.consented(records).then(({ records: kept, withoutConsent }) => {
      result.withoutConsent = (result.withoutConsent ?? 0) + withoutConsent
      return kept.length > 0 ? writer.add(kept) : undefined
    })
  }
  const rejected = (error: unknown): Promise<void> | undefined => {
    if (!template.skipInvalid || !(error instanceof MailstreamError) || error.code !== 'E_VALIDATION') throw error
    result.invalid++
    return chunk.length >= CHUNK ? flush() : undefined
  }
  const settle = (built: unknown, index: number): Promise<void> | undefined => {
    try {
      chunk.push(toBatchRecord(template, built, index))
    } catch (error) {
      return rejected(error)
    }
    return chunk.length >= CHUNK ? flush() : undefined
  }
  /** Adds one recipient; returns a promise only when it has to wait (an async build, a full chunk). */
  const take = (recipient: R): Promise<void> | undefined => {
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

  if (typeof (recipients as AsyncIterable<R>)[Symbol.asyncIterator] === 'function') {
    for await (const recipient of recipients as AsyncIterable<R>) {
      if (writer.stopped()) break
      const wait = take(recipient)
      if (wait) await wait
    }
  } else {
    for (const recipient of recipients as Iterable<R>) {
      if (writer.stopped()) break
      const wait = take(recipient)
      if (wait) await wait
    }
  }
  if (!writer.stopped()) await flush()
}

/** The queue's advertising profile for an advertising batch; undefined for another batch. */
function advertisingOf(context: QueueContext, options: BatchOptions): AdvertisingProfile | undefined {
  if (options.advertising === undefined) return undefined
  if (options.advertising !== true) {
    throw new MailstreamError(
      'E_VALIDATION',
      'options.advertising: a batch takes advertising: true (consent per recipient); the transaction exception is per recipient: enqueue those jobs with enqueue',
      { field: 'options.advertising' },
    )
  }
  if (!context.advertising) {
    throw new MailstreamError(
      'E_VALIDATION',
      'options.advertising: this queue has no advertising profile (createEmailQueue({ advertising: { sender, consent } }))',
      { field: 'options.advertising' },
    )
  }
  return context.advertising
}

/**
 * `enqueueBatch`. When traced, one span covers the whole call, and every job of the batch stores
 * its traceparent (in the shared middle of the payloads, and on each record for the status hash).
 */
export async function enqueueBatch<R>(
  context: QueueContext,
  batchId: string,
  recipients: Iterable<R> | AsyncIterable<R>,
  build?: BuildRecipient<R>,
  options: BatchOptions = {},
): Promise<EnqueueBatchResult> {
  checkBatchCall(batchId, recipients, build, options)
  const profile = advertisingOf(context, options)
  if (profile && options.subject !== undefined) {
    options = { ...options, subject: profile.batchSubject(options.subject) }
  }
  if (profile) profile.checkBody(options)
  else if (context.advertising && options.subject !== undefined) {
    context.advertising.checkOrdinary({ subject: options.subject })
  }
  // Each recipient's due time (its own zone's, if it gives one) held by the calendar, then out of quiet hours.
  const template = batchTemplate(
    batchId,
    options,
    profile ? withHolder(context.hold, profile.batchDueAt) : context.hold,
  )
  // Each recipient may bring its own variables: only that the template exists is checked here.
  if (context.templates && options.template !== undefined) {
    await checkTemplate(
      context.templates,
      { template: options.template, data: options.data, locale: options.locale },
      '',
      '',
      false,
    )
  }
  const { tracing } = context
  const span = !tracing.active()
    ? undefined
    : startEnqueueManySpan(tracing, 'enqueueBatch', context.keys.stream(template.priority), {
        'mailstream.batch.id': batchId,
        'mailstream.job.type': template.type,
        'mailstream.subject': tracing.recordSubject ? options.subject : undefined,
      })
  if (!span) return writeBatch(context, template, recipients, build, profile, undefined)
  template.middle += `,"trace":"${span.traceparent}"`
  return endWith(span, writeBatch(context, template, recipients, build, profile, span.traceparent), (result) => ({
    'messaging.batch.message_count': result.enqueued,
    'mailstream.batch.total': result.total,
    'mailstream.batch.duplicates': result.duplicates,
    'mailstream.batch.invalid': result.invalid,
    'mailstream.batch.cancelled': result.cancelled,
  }))
}

async function writeBatch<R>(
  context: QueueContext,
  template: BatchTemplate,
  recipients: Iterable<R> | AsyncIterable<R>,
  build: BuildRecipient<R> | undefined,
  profile: AdvertisingProfile | undefined,
  trace: string | undefined,
): Promise<EnqueueBatchResult> {
  const { batchId } = template
  const result: EnqueueBatchResult = { batchId, total: 0, enqueued: 0, duplicates: 0, invalid: 0, cancelled: false }
  if (profile) result.withoutConsent = 0
  const opening = await openBatch(context.steps, context.keys, template)
  if (opening === 'cancelled') return { ...result, cancelled: true }
  if (opening === 'finished') {
    // A finished batch is closed: nothing is added; every recipient counts as already there.
    for await (const _ of recipients) result.total++
    result.duplicates = result.total
    return result
  }
  const writer = createChunkWriter(context, result, trace)
  try {
    await feed(template, recipients, build, result, writer, profile)
  } catch (error) {
    // Every write under way settles before this call does, whether it succeeds or throws.
    await writer.drain()
    throw error
  }
  await writer.settle()
  result.cancelled = writer.stopped()
  if (!result.cancelled) await sealBatch(context.steps, context.keys, batchId)
  return result
}
