// `enqueueBatch`: recipients streamed into the jobs of one batch, in pipelined chunks with bounded memory.
import { type AbTestSpec, type BatchVariant, parseAbTest } from '../ab-test/options.js'
import { abSlot } from '../ab-test/split.js'
import {
  AB_FIELD,
  AB_TEMPLATES_FIELD,
  type HeldRecipient,
  type StoredAbTemplates,
  type StoredAbTest,
  winnerRecords,
  withVariantData,
} from '../ab-test/state.js'
import { MailstreamError } from '../errors.js'
import { parseAddress } from '../job.js'
import type { AdvertisingProfile } from '../korea/advertising.js'
import { abHold } from '../lua/ab-test.js'
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

  /** Held recipients of an A/B test; once the test is decided they are enqueued with the winner instead. */
  async function hold(entries: readonly string[], test: AbWrite): Promise<void> {
    const reply = await abHold(context.steps, context.keys, test.batchId, entries)
    if (reply === 'cancelled') stop = true
    else if (reply === 'held') result.held = (result.held ?? 0) + entries.length
    else {
      const winner = test.templates.templates[reply] as BatchTemplate
      await write(winnerRecords(winner, test.templates.data[reply], entries, Date.now()))
    }
  }

  async function track(task: Promise<void>): Promise<void> {
    const tracked = task
      .catch((error) => {
        failure ??= error
        stop = true
      })
      .finally(() => inFlight.delete(tracked))
    inFlight.add(tracked)
    if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
  }

  return {
    stopped: () => stop,
    /** Starts writing `records`; waits only when IN_FLIGHT writes are under way. */
    add: (records: readonly EnqueueRecord[]): Promise<void> => track(write(records)),
    /** Starts holding back `entries` (JSON recipients) of an A/B test, as `add`. */
    hold: (entries: readonly string[], test: AbWrite): Promise<void> => track(hold(entries, test)),
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
  test: AbWrite | undefined,
): Promise<void> {
  let chunk: EnqueueRecord[] = []
  let held: string[] = []
  const flush = (): Promise<void> | undefined => {
    if (held.length > 0 && test) {
      const entries = held
      held = []
      const holding = writer.hold(entries, test)
      if (chunk.length === 0) return holding
      return holding.then(flush)
    }
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
    return chunk.length + held.length >= CHUNK ? flush() : undefined
  }
  const settle = (built: unknown, index: number): Promise<void> | undefined => {
    try {
      const record = toBatchRecord(template, built, index)
      if (!test) chunk.push(record)
      else {
        const placed = placeInTest(test, record, built, index)
        if (typeof placed === 'string') held.push(placed)
        else chunk.push(placed)
      }
    } catch (error) {
      return rejected(error)
    }
    return chunk.length + held.length >= CHUNK ? flush() : undefined
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

/** An A/B test as `enqueueBatch` writes it: the checked options and each variant's template. */
interface AbWrite {
  batchId: string
  spec: AbTestSpec
  templates: StoredAbTemplates
}

/**
 * Where one recipient of an A/B test goes (its record built with variant 0 already, which checked
 * it): the record of its variant when it falls in the test share, else its entry for the holdout list.
 */
function placeInTest(test: AbWrite, record: EnqueueRecord, built: unknown, index: number): EnqueueRecord | string {
  const { spec, templates } = test
  const slot = abSlot(test.batchId, record.rcpt, spec.share, spec.variants.length)
  const time = built as { timeZone?: unknown; deliverAt?: unknown }
  if (typeof built === 'object' && built !== null && (time.timeZone !== undefined || time.deliverAt !== undefined)) {
    throw new MailstreamError(
      'E_VALIDATION',
      `recipients[${index}]: timeZone/deliverAt: an A/B test batch has no per-recipient delivery times`,
      { field: `recipients.${index}.${time.timeZone !== undefined ? 'timeZone' : 'deliverAt'}` },
    )
  }
  if (!slot.inTest) {
    const fields = typeof built === 'object' && built !== null && 'to' in built ? (built as HeldRecipient) : undefined
    const entry: HeldRecipient = { to: parseAddress((fields ? fields.to : built) as string) as HeldRecipient['to'] }
    if (fields?.data !== undefined) entry.data = fields.data
    if (fields?.locale !== undefined) entry.locale = fields.locale
    return JSON.stringify(entry)
  }
  const data = templates.data[slot.variant]
  const own =
    slot.variant === 0 && !data
      ? record
      : toBatchRecord(templates.templates[slot.variant] as BatchTemplate, withVariantData(built, data), index)
  own.variant = slot.variant
  return own
}

const BODY_FIELDS = ['template', 'html', 'text'] as const

/** The batch options of one variant: its subject and body (all of it, when it gives one) over the shared ones. */
function variantOptions(options: BatchOptions, variant: BatchVariant): BatchOptions {
  const merged: BatchOptions = { ...options }
  if (variant.subject !== undefined) merged.subject = variant.subject
  if (BODY_FIELDS.some((field) => variant[field] !== undefined)) {
    for (const field of BODY_FIELDS) {
      if (variant[field] === undefined) delete merged[field]
      else merged[field] = variant[field]
    }
  }
  return merged
}

/** Each variant's template; an error in a variant's own field is named as that field. */
function variantTemplates(batchId: string, options: BatchOptions, spec: AbTestSpec): BatchTemplate[] {
  const templates = spec.variants.map((variant, index) => {
    try {
      return batchTemplate(batchId, variantOptions(options, variant))
    } catch (error) {
      const field = error instanceof MailstreamError ? error.field : undefined
      if (field === undefined || !(field in variant)) throw error
      throw new MailstreamError(
        'E_VALIDATION',
        `options.variants.${index}.${(error as MailstreamError).message.replace('[mailstream] ', '')}`,
        {
          field: `options.variants.${index}.${field}`,
          cause: error,
        },
      )
    }
  })
  // One batch, one start: every variant's jobs are created and due at the same time.
  const first = templates[0] as BatchTemplate
  for (const template of templates) {
    template.startedAt = first.startedAt
    template.dueAt = first.dueAt
  }
  return templates
}

/**
 * Records a batch's test in its hash (the first call's stands) and resolves it; a call with
 * another test, or without one for a batch that has one, is refused before anything is enqueued.
 */
async function openAbTest(context: QueueContext, template: BatchTemplate, test: AbWrite | undefined): Promise<void> {
  const batchKey = context.keys.batch(template.batchId)
  if (!test) {
    if ((await context.steps.hexists(batchKey, AB_FIELD)) === 1) {
      throw new MailstreamError(
        'E_VALIDATION',
        `options.variants: batch ${template.batchId} is an A/B test: enqueue it again with the same variants and test`,
        { field: 'options.variants' },
      )
    }
    return
  }
  const { spec } = test
  const specJson = JSON.stringify(spec)
  const stored: StoredAbTest = {
    share: spec.share,
    metric: spec.metric,
    minSample: spec.minSample,
    decideAfterMs: spec.decideAfterMs,
    decideAt: Math.max(template.startedAt, template.dueAt) + spec.decideAfterMs,
    variants: spec.variants.map(({ subject, template: name }) => ({
      ...(subject !== undefined ? { subject } : {}),
      ...(name !== undefined ? { template: name } : {}),
    })),
    spec: specJson,
  }
  const replies = await context.steps
    .pipeline()
    .hsetnx(batchKey, AB_FIELD, JSON.stringify(stored))
    .hsetnx(batchKey, AB_TEMPLATES_FIELD, JSON.stringify(test.templates))
    .hget(batchKey, AB_FIELD)
    .exec()
  for (const [error] of replies ?? []) {
    if (error) throw new MailstreamError('E_REDIS', `enqueueBatch failed: ${error.message}`, { cause: error })
  }
  const existing = JSON.parse(String(replies?.[2]?.[1] ?? 'null')) as StoredAbTest | null
  if (existing?.spec !== specJson) {
    throw new MailstreamError(
      'E_VALIDATION',
      `options.test: batch ${template.batchId} was enqueued with another A/B test; cancel it and use a new batchId`,
      { field: 'options.test' },
    )
  }
}

/** After every recipient was written: the test waits for its decision, or the batch is sealed if it is over. */
async function afterAbTest(context: QueueContext, batchId: string): Promise<void> {
  const { steps, keys } = context
  const [drainedAt, ab] = await steps.hmget(keys.batch(batchId), 'ab:drainedAt', AB_FIELD)
  if (drainedAt !== null) {
    await sealBatch(steps, keys, batchId)
    return
  }
  const { decideAt } = JSON.parse(ab ?? '{}') as StoredAbTest
  await steps.zadd(keys.abTests, 'NX', decideAt, batchId)
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
  const spec = parseAbTest(options.variants, options.test, context.statusTtlSeconds)
  if (spec && options.advertising !== undefined) {
    throw new MailstreamError(
      'E_VALIDATION',
      'options.variants: an advertising batch cannot be an A/B test (the winner would go out at decision time, whatever the quiet hours)',
      { field: 'options.variants' },
    )
  }
  if (spec && (context.hold !== undefined || options.deliverAt !== undefined)) {
    throw new MailstreamError(
      'E_VALIDATION',
      'options.variants: an A/B test sends its held recipients the winner at the decision: not on a queue with a sending calendar or quiet hours, nor with deliverAt',
      { field: 'options.variants' },
    )
  }
  const { variants: _variants, test: _test, ...shared } = options
  options = shared
  const profile = advertisingOf(context, options)
  if (profile && options.subject !== undefined) {
    options = { ...options, subject: profile.batchSubject(options.subject) }
  }
  if (profile) profile.checkBody(options)
  else if (context.advertising && options.subject !== undefined) {
    context.advertising.checkOrdinary({ subject: options.subject })
  }
  const holder = profile ? withHolder(context.hold, profile.batchDueAt) : context.hold
  // Each recipient's due time (its own zone's, if it gives one) held by the calendar, then out of quiet hours.
  const templates = spec ? variantTemplates(batchId, options, spec) : undefined
  const template = templates?.[0] ?? batchTemplate(batchId, options, holder)
  // Each recipient may bring its own variables: only that the template exists is checked here.
  const names = spec ? spec.variants.map((variant) => variantOptions(options, variant).template) : [options.template]
  for (const name of new Set(names)) {
    if (!context.templates || name === undefined) continue
    await checkTemplate(
      context.templates,
      { template: name, data: options.data, locale: options.locale },
      '',
      '',
      false,
    )
  }
  const test: AbWrite | undefined =
    spec && templates
      ? { batchId, spec, templates: { templates, data: spec.variants.map((variant) => variant.data ?? null) } }
      : undefined
  const { tracing } = context
  const span = !tracing.active()
    ? undefined
    : startEnqueueManySpan(tracing, 'enqueueBatch', context.keys.stream(template.priority), {
        'mailstream.batch.id': batchId,
        'mailstream.job.type': template.type,
        'mailstream.subject': tracing.recordSubject ? options.subject : undefined,
      })
  if (!span) return writeBatch(context, template, recipients, build, profile, undefined, test)
  for (const traced of templates ?? [template]) traced.middle += `,"trace":"${span.traceparent}"`
  return endWith(span, writeBatch(context, template, recipients, build, profile, span.traceparent, test), (result) => ({
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
  test: AbWrite | undefined,
): Promise<EnqueueBatchResult> {
  const { batchId } = template
  const result: EnqueueBatchResult = { batchId, total: 0, enqueued: 0, duplicates: 0, invalid: 0, cancelled: false }
  if (profile) result.withoutConsent = 0
  if (test) result.held = 0
  const opening = await openBatch(context.steps, context.keys, template)
  if (opening === 'open') await openAbTest(context, template, test)
  if (opening === 'cancelled') return { ...result, cancelled: true }
  if (opening === 'finished') {
    // A finished batch is closed: nothing is added; every recipient counts as already there.
    for await (const _ of recipients) result.total++
    result.duplicates = result.total
    return result
  }
  const writer = createChunkWriter(context, result, trace)
  try {
    await feed(template, recipients, build, result, writer, profile, test)
  } catch (error) {
    // Every write under way settles before this call does, whether it succeeds or throws.
    await writer.drain()
    throw error
  }
  await writer.settle()
  result.cancelled = writer.stopped()
  // An A/B test's batch is sealed once its held recipients are enqueued with the winner.
  if (!result.cancelled && test) await afterAbTest(context, batchId)
  else if (!result.cancelled) await sealBatch(context.steps, context.keys, batchId)
  return result
}
