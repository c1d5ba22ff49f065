// The test queue's worker: due jobs in priority order, rendered, built and sent as the worker
// does (buildMessage, the retry policy), one at a time, on the virtual clock.
import { MailstreamError } from '../errors.js'
import type { Address, EmailJob } from '../job.js'
import type { DeadLetter } from '../queue/types.js'
import type { EmailMessage, RenderedEmail, TemplateRendererLike, Transport } from '../transport.js'
import { buildMessage, everyRecipientSuppressed } from '../worker/message.js'
import { decide, type RetryPolicy } from '../worker/retry.js'
import type { Batches } from './batches.js'
import { DELAYED, type JobRecord, type JobStore } from './store.js'

/** One message the test queue handed to its transport. */
export interface TestDelivery {
  message: EmailMessage
  messageId: string
  /** Epoch ms on the test queue's clock. */
  sentAt: number
  /** 1 for the first try. */
  attempt: number
}

/** The outcome totals `stats()` reports, as the workers count them. */
export interface Totals {
  sent: number
  failed: number
  suppressed: number
  retried: number
  throttled: number
}

export interface DeliveryConfig {
  store: JobStore
  batches: Batches
  transport: Transport
  templates: TemplateRendererLike | undefined
  from: Address | undefined
  policy: RetryPolicy
  /** Lower-case addresses on the suppression list. */
  suppressed: ReadonlyMap<string, unknown>
  deadLetters: DeadLetter[]
  totals: Totals
}

const PRIORITY_ORDER = { high: 0, normal: 1, low: 2 } as const
/** Tries one call makes at most: a transport that always throttles would otherwise loop for ever. */
const MAX_TRIES = 100_000

/** What one call of `drain`, `advance` or `runAll` has done so far. */
export interface Run {
  sent: TestDelivery[]
  tries: number
}

/** Due delayed jobs go back to their send streams, behind what waits there (promote.lua). */
function promoteDue(store: JobStore): void {
  const now = store.now()
  const due = store
    .all()
    .filter((record) => DELAYED.has(record.status) && record.dueAt <= now)
    .sort((a, b) => a.dueAt - b.dueAt || a.seq - b.seq)
  for (const record of due) {
    record.status = 'queued'
    record.dueAt = 0
    record.seq = store.nextSeq()
    record.queuedAt = now
    record.updatedAt = now
  }
}

/** Strict priority, then first in first out. */
function nextQueued(store: JobStore): JobRecord | undefined {
  let next: JobRecord | undefined
  for (const record of store.all()) {
    if (record.status !== 'queued') continue
    if (
      !next ||
      PRIORITY_ORDER[record.job.priority] < PRIORITY_ORDER[next.job.priority] ||
      (record.job.priority === next.job.priority && record.seq < next.seq)
    ) {
      next = record
    }
  }
  return next
}

/** The earliest due time in the delayed set, or undefined when it is empty. */
function nextDue(store: JobStore): number | undefined {
  let next: number | undefined
  for (const record of store.all()) {
    if (DELAYED.has(record.status) && (next === undefined || record.dueAt < next)) next = record.dueAt
  }
  return next
}

/** The message for a job, rendered and built as the worker's process step does. */
async function render(config: DeliveryConfig, job: EmailJob, suppressed: ReadonlySet<string>): Promise<EmailMessage> {
  if (job.template === undefined) return buildMessage(job, suppressed, config.from)
  if (!config.templates) {
    throw new MailstreamError(
      'E_CONFIG',
      `job ${job.id} names template '${job.template}' but the test queue has no templates: createTestQueue({ templates })`,
      { field: 'templates' },
    )
  }
  const shared = job.batchId !== undefined ? config.batches.get(job.batchId)?.shared : undefined
  const data = shared ? { ...shared, ...job.data } : (job.data ?? {})
  const rendered: RenderedEmail = await config.templates.render(job.template, data, {
    ...(job.locale !== undefined && { locale: job.locale }),
    job: { id: job.id, type: job.type, to: job.to, ...(job.batchId !== undefined && { batchId: job.batchId }) },
  })
  return buildMessage(job, suppressed, config.from, rendered)
}

export function createDelivery(config: DeliveryConfig) {
  const { store, batches, transport, policy, totals } = config
  const never = new AbortController().signal
  let deadEntries = 0

  function final(record: JobRecord, status: 'sent' | 'dead' | 'suppressed'): void {
    store.finish(record, status)
    const batchId = record.job.batchId
    if (batchId !== undefined) batches.count(batchId, status === 'dead' ? 'failed' : status)
  }

  /** One try of one job, and its outcome recorded as finish.lua records it. */
  async function deliver(record: JobRecord): Promise<TestDelivery | undefined> {
    const { job } = record
    const suppressed = new Set(
      [...job.to, ...(job.cc ?? []), ...(job.bcc ?? [])]
        .map((address) => address.address.toLowerCase())
        .filter((address) => config.suppressed.has(address)),
    )
    if (everyRecipientSuppressed(job, suppressed)) {
      record.error = `suppressed: ${[...suppressed].join(', ')}`
      totals.suppressed++
      final(record, 'suppressed')
      return undefined
    }
    record.status = 'active'
    const attempt = record.attempts + 1
    try {
      const message = await render(config, job, suppressed)
      const { messageId } = await transport.send(message, { signal: never, attempt })
      record.attempts = attempt
      record.messageId = messageId
      record.sentAt = store.now()
      totals.sent++
      final(record, 'sent')
      return { message, messageId, sentAt: store.now(), attempt }
    } catch (error) {
      const now = store.now()
      const { outcome, attempts } = decide(error, attempt, job.maxAttempts, policy, now)
      record.attempts = attempts
      if (outcome.kind === 'retry' || outcome.kind === 'throttle') {
        record.status = outcome.kind === 'retry' ? 'retrying' : 'throttled'
        record.dueAt = outcome.dueAt
        record.error = outcome.error
        record.updatedAt = now
        totals[outcome.kind === 'retry' ? 'retried' : 'throttled']++
        return undefined
      }
      const reason = (outcome as { error: string }).error
      record.error = reason
      config.deadLetters.push({
        entryId: `${now}-${deadEntries++}`,
        id: job.id,
        job,
        error: reason,
        attempts,
        failedAt: now,
      })
      totals.failed++
      final(record, 'dead')
      return undefined
    }
  }

  /** Sends every job due now, retries due now included. */
  async function drainNow(run: Run): Promise<void> {
    for (;;) {
      promoteDue(store)
      const next = nextQueued(store)
      if (!next) return
      if (++run.tries > MAX_TRIES) {
        throw new MailstreamError('E_CONFIG', `test queue: more than ${MAX_TRIES} tries in one call; is a job looping?`)
      }
      const delivered = await deliver(next)
      if (delivered) run.sent.push(delivered)
    }
  }

  return {
    drain: drainNow,
    /** Moves the clock `ms` forward, sending each job at its due time on the way. */
    async advance(ms: number, run: Run): Promise<void> {
      const target = store.now() + ms
      await drainNow(run)
      for (let due = nextDue(store); due !== undefined && due <= target; due = nextDue(store)) {
        store.setNow(due)
        await drainNow(run)
      }
      store.setNow(target)
      await drainNow(run)
    },
    /** Jumps the clock from due time to due time until no job waits. */
    async runAll(run: Run): Promise<void> {
      await drainNow(run)
      for (let due = nextDue(store); due !== undefined; due = nextDue(store)) {
        store.setNow(due)
        await drainNow(run)
      }
    },
  }
}

export type Delivery = ReturnType<typeof createDelivery>
