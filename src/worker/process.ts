import { type Address, type EmailJob, parseJob } from '../job.js'
import { applyAdvertisingRules } from '../korea/message.js'
import type { AdvertisingSender } from '../korea/types.js'
import type { ProviderCharge } from '../lua/gcra.js'
import { ADVERTISING_SENT, type createMetricsRecorder, providerParked, providerSlowDowns } from '../metrics.js'
import { messageAttributes, startDeliverySpan } from '../telemetry/spans.js'
import type { SpanHandle, Tracing } from '../telemetry/tracing.js'
import type { TemplateRendererLike } from '../transport.js'
import { buildMessage, everyRecipientSuppressed, recipientCount, suppressedSet } from './message.js'
import type { Pacing } from './pacing.js'
import { createMessageRenderer } from './render-message.js'
import { decide, type RetryPolicy } from './retry.js'
import type { Sender } from './sender.js'
import { endDeliverySpan } from './trace.js'
import type { Outcome, Processed, Work } from './types.js'

/** What a job gives when the worker was stopped hard meanwhile: its entry stays pending. */
export const ABANDONED = Symbol('abandoned')

/** What one try charged to the providers, for the slow-down and the payload written back. */
interface Tried {
  charges: readonly ProviderCharge[]
  /** The job came back from a park: its provider units were reserved then, for this slot (server ms). */
  prepaid: number | undefined
  /** The payload to write back instead of the delivery's. */
  payload?: string
}

/** The job as JSON with (or without, for `slot` undefined) its reserved provider slot (server ms). */
function withSlot(job: EmailJob, slot: number | undefined): string {
  const { providerSlot: _, ...rest } = job
  return JSON.stringify(slot === undefined ? rest : { ...rest, providerSlot: slot })
}

export interface ProcessOptions extends RetryPolicy {
  maxDeliveries: number
  from: Address | undefined
  templates?: TemplateRendererLike | undefined
  /** Data every job of a batch shares, read once per batch. */
  batchData(batchId: string): Promise<Record<string, unknown> | undefined>
  pacing: Pacing | undefined
  sender: Sender
  metrics: ReturnType<typeof createMetricsRecorder>
  /** Aborted on a hard stop. */
  signal(): AbortSignal
  /** The Korean advertising profile: the sender shown in the footer of advertising email. */
  advertising?: { sender: AdvertisingSender } | undefined
  tracing: Tracing
  transport: { name: string }
  /** The send streams, high to low (span destinations), and the consumer group. */
  streams: readonly string[]
  group: string
}

/**
 * One job from its entry to its outcome: render, charge the rate limit, send, and decide what
 * a failure means. Never writes to Redis and never emits: the caller records and reports.
 */
export function createProcess(options: ProcessOptions) {
  const { pacing, sender, metrics } = options
  const advertiser = options.advertising?.sender
  const renderMessage = createMessageRenderer({
    templates: options.templates,
    batchData: options.batchData,
    from: options.from,
    advertiser,
  })

  /** One try: the message, its charge against the rate limit, its send. Throws what failed. */
  async function attempt(
    work: Work,
    job: EmailJob,
    attempts: number,
    span: SpanHandle | undefined,
    tried: Tried,
  ): Promise<Outcome | typeof ABANDONED> {
    const suppressed = suppressedSet(work)
    let message =
      job.template === undefined ? buildMessage(job, suppressed, options.from) : await renderMessage(job, suppressed)
    if (job.advertising !== undefined || advertiser) message = applyAdvertisingRules(job, message, advertiser)
    span?.set(messageAttributes(options.tracing, recipientCount(message), message.subject))
    // Charged per recipient left after the suppression check, right before the send.
    const waitStartedAt = performance.now()
    // A job back from a park has its provider units already (if not back too late for its slot).
    if (pacing?.providers) tried.charges = pacing.providers.charges(job, message, work.suppressed.length)
    const { prepaid } = tried
    const charges =
      prepaid === undefined ? tried.charges : tried.charges.map((charge) => ({ ...charge, slot: prepaid }))
    const charged = pacing ? await pacing.charge(work, recipientCount(message), charges) : undefined
    const waitedMs = performance.now() - waitStartedAt
    if (pacing && waitedMs >= 1) metrics.observe('rate_limit_wait', waitedMs)
    if (charged?.kind === 'abandoned') return ABANDONED
    // A full daily quota (or a long wait for units) re-delays the job without using an attempt.
    if (charged?.kind === 'delay')
      return { kind: 'throttle', dueAt: Date.now() + charged.retryAfterMs, error: charged.reason }
    if (charged?.kind === 'park') {
      // Back at its providers' slot, marked so that they are not charged again (no attempt, no throttle).
      const dueAt = Date.now() + charged.retryAfterMs
      tried.payload = withSlot(job, charged.slot)
      for (const charge of charges) metrics.count(providerParked(charge.provider))
      return { kind: 'throttle', dueAt, error: charged.reason }
    }
    const sendStartedAt = performance.now()
    try {
      const { messageId, rejected } = await sender.send(message, attempts)
      metrics.observe('delivery_latency', Date.now() - job.createdAt)
      if (job.advertising !== undefined) metrics.count(ADVERTISING_SENT)
      return { kind: 'sent', messageId, ...(rejected?.length && { rejected }) }
    } finally {
      metrics.observe('send_duration', performance.now() - sendStartedAt)
    }
  }

  async function handle(
    work: Work,
    job: EmailJob | null,
    span: SpanHandle | undefined,
  ): Promise<Processed | typeof ABANDONED> {
    const done = (outcome: Outcome, attempts = work.attempts): Processed => ({ work, job, attempts, outcome })
    if (!job) return done({ kind: 'dead', error: 'job payload is not readable JSON' })
    if (work.verdict === 'over') {
      const error = `delivered ${work.delivery.deliveries} times without finishing (maxDeliveries ${options.maxDeliveries})`
      return done({ kind: 'dead', error })
    }
    if (everyRecipientSuppressed(job, suppressedSet(work))) {
      return done({ kind: 'suppressed', reason: `suppressed: ${work.suppressed.join(', ')}` })
    }
    // Every try counts, a failed render as much as a failed send: nothing is retried without end.
    const attempts = work.attempts + 1
    const slot = job.providerSlot
    const tried: Tried = { charges: [], prepaid: typeof slot === 'number' && Number.isFinite(slot) ? slot : undefined }
    try {
      const outcome = await attempt(work, job, attempts, span, tried)
      if (outcome === ABANDONED) return ABANDONED
      // A throttle does not use an attempt. (Only a pacing delay or park gives one here: the worker's
      // own limiter, not the transport, so the run of transport throttles neither grows nor ends.)
      if (outcome.kind === 'throttle') {
        return {
          ...done(outcome, work.attempts),
          throttles: work.throttles ?? 0,
          ...(tried.payload !== undefined && { payload: tried.payload }),
        }
      }
      return done(outcome, attempts)
    } catch (error) {
      if (options.signal().aborted) return ABANDONED // stopped hard: the entry stays pending for another worker
      const decision = decide(error, attempts, job.maxAttempts, options, Date.now(), work.throttles ?? 0)
      // A provider's own rate reply slows that provider down, not this worker's pace for all of them.
      const forProvider = tried.charges.length > 0 && pacing?.providers?.slowsDown(error) === true
      if (decision.outcome.kind === 'throttle' && !forProvider) pacing?.throttled()
      if (tried.charges.length > 0 && pacing?.providers) {
        for (const provider of await pacing.providers.replied(tried.charges, error)) {
          metrics.count(providerSlowDowns(provider))
        }
      }
      return {
        ...done(decision.outcome, decision.attempts),
        throttles: decision.throttles,
        failure: decision.failure,
        ...(decision.pause !== undefined && { pauseReason: decision.pause }),
        // The reserved slot was used by this try: the next one is charged to its providers again.
        ...(tried.prepaid !== undefined && { payload: withSlot(job, undefined) }),
      }
    }
  }

  return async function process(work: Work): Promise<Processed | typeof ABANDONED> {
    const job = parseJob(work.delivery.payload)
    const span = !options.tracing.active()
      ? undefined
      : startDeliverySpan(options.tracing, {
          destination: options.streams[work.delivery.streamIndex - 1] ?? '',
          group: options.group,
          transport: options.transport.name,
          attempt: work.attempts + 1,
          deliveries: work.delivery.deliveries,
          job,
          jobId: work.delivery.jobId,
        })
    if (!span) return handle(work, job, undefined)
    try {
      const processed = await span.run(() => handle(work, job, span))
      endDeliverySpan(span, processed === ABANDONED ? 'abandoned' : processed)
      return processed
    } catch (error) {
      span.fail(error)
      span.end()
      throw error
    }
  }
}

export type Process = ReturnType<typeof createProcess>
