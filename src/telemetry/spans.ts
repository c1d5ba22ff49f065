// The spans mailstream records, and their attributes: the messaging semantic conventions where they
// fit (`messaging.*`, `error.type`), mailstream's own under `mailstream.*`. See docs/operations.md.
import { createHash } from 'node:crypto'
import type { Address, EmailJob } from '../job.js'
import type { SpanAttributes, SpanHandle, Tracing } from './tracing.js'

export const MESSAGING_SYSTEM = 'mailstream'

/** Hex characters of SHA-256 kept per address: enough to tell recipients apart, not to print them. */
const HASH_LENGTH = 16

/** An address as a span may carry it: the first 16 hex characters of the SHA-256 of its lower-case form. */
export function hashAddress(address: string): string {
  return createHash('sha256').update(address.toLowerCase()).digest('hex').slice(0, HASH_LENGTH)
}

/** Distinct recipients (to, cc, bcc) of a job, lower-case. */
function recipientsOf(job: Pick<EmailJob, 'to' | 'cc' | 'bcc'>): string[] {
  const all = new Set<string>()
  const add = (list: Address[] | undefined) => {
    for (const { address } of list ?? []) all.add(address.toLowerCase())
  }
  add(job.to)
  add(job.cc)
  add(job.bcc)
  return [...all]
}

function jobAttributes(tracing: Tracing, job: EmailJob): SpanAttributes {
  const recipients = recipientsOf(job)
  return {
    'messaging.message.id': job.id,
    'mailstream.job.type': job.type,
    'mailstream.job.priority': job.priority,
    'mailstream.batch.id': job.batchId,
    'mailstream.recipient.count': recipients.length,
    'mailstream.recipient.hash': recipients.map(hashAddress),
    'mailstream.subject': tracing.recordSubject ? job.subject : undefined,
  }
}

/** The span of one `enqueue` call (PRODUCER); its traceparent is stored with the job. */
export function startEnqueueSpan(
  tracing: Tracing,
  destination: string,
  job: EmailJob,
  dueAt: number,
): SpanHandle | undefined {
  if (!tracing.active()) return undefined
  return tracing.start(`enqueue ${destination}`, {
    kind: 'producer',
    attributes: {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'enqueue',
      'messaging.destination.name': destination,
      ...jobAttributes(tracing, job),
      'mailstream.due_at': dueAt > 0 ? dueAt : undefined,
    },
  })
}

/**
 * The span of one `enqueueMany` or `enqueueBatch` call (PRODUCER): one for all its jobs, each of
 * which stores its traceparent. `destination` is the one stream they all go to, when there is one.
 */
export function startEnqueueManySpan(
  tracing: Tracing,
  name: 'enqueueMany' | 'enqueueBatch',
  destination: string,
  attributes: SpanAttributes,
): SpanHandle | undefined {
  if (!tracing.active()) return undefined
  return tracing.start(`${name} ${destination}`, {
    kind: 'producer',
    attributes: {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.operation.type': 'send',
      'messaging.operation.name': name,
      'messaging.destination.name': destination,
      ...attributes,
    },
  })
}

/** Ends a span when `promise` settles: `onResult` adds what the result says; a rejection is an error. */
export function endWith<T>(span: SpanHandle, promise: Promise<T>, onResult: (result: T) => SpanAttributes): Promise<T> {
  return promise.then(
    (result) => {
      span.set(onResult(result))
      span.end()
      return result
    },
    (error: unknown) => {
      span.fail(error)
      span.end()
      throw error
    },
  )
}

export interface DeliveryStart {
  destination: string
  group: string
  transport: string
  /** The try this is (attempts used before, plus one). */
  attempt: number
  deliveries: number
  job: EmailJob | null
  jobId: string
}

/**
 * The span of one attempt in the worker (CONSUMER, `process`), linked to the job's enqueue span.
 * A job handled without a try (dead after too many deliveries, unreadable, every recipient
 * suppressed) gets one as well, so that its end is on record.
 */
export function startDeliverySpan(tracing: Tracing, start: DeliveryStart): SpanHandle | undefined {
  if (!tracing.active()) return undefined
  const { job } = start
  return tracing.start(`deliver ${start.destination}`, {
    kind: 'consumer',
    link: job?.trace,
    attributes: {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'deliver',
      'messaging.destination.name': start.destination,
      'messaging.consumer.group.name': start.group,
      'messaging.message.id': start.jobId,
      ...(job && jobAttributes(tracing, job)),
      'mailstream.transport': start.transport,
      'mailstream.attempt': start.attempt,
      'mailstream.max_attempts': job?.maxAttempts,
      'mailstream.delivery.count': start.deliveries,
    },
  })
}

/** What a built message adds to its attempt's span: the recipients left, and the rendered subject if opted in. */
export function messageAttributes(tracing: Tracing, recipients: number, subject: string | undefined): SpanAttributes {
  return {
    'mailstream.recipient.count': recipients,
    'mailstream.subject': tracing.recordSubject ? subject : undefined,
  }
}

export interface SesEventRecord {
  /** The SES event type: delivery, bounce, complaint, open, ... */
  type: string
  sesMessageId: string
  jobId: string | undefined
  batchId: string | undefined
  /** The job's stored enqueue traceparent, when the job was found and traced. */
  trace: string | undefined
  recipients: readonly string[]
  bounceType: string | undefined
  /** Epoch ms when SES says it happened. */
  timestamp: number
}

/**
 * One SES event from the webhook (INTERNAL): a short span linked to the job's enqueue span, with
 * the event as a span event at the time SES gives. (The attempt's span has ended by then, and an
 * ended span takes no more events.)
 */
export function recordSesEvent(tracing: Tracing, record: SesEventRecord): void {
  if (!tracing.active()) return
  const span = tracing.start(`ses ${record.type}`, {
    kind: 'internal',
    link: record.trace,
    attributes: {
      'messaging.system': MESSAGING_SYSTEM,
      'messaging.message.id': record.jobId,
      'mailstream.batch.id': record.batchId,
      'mailstream.provider.message_id': record.sesMessageId,
      'mailstream.ses.event': record.type,
      'mailstream.ses.bounce_type': record.bounceType,
      'mailstream.recipient.count': record.recipients.length,
      'mailstream.recipient.hash': record.recipients.map(hashAddress),
    },
  })
  if (!span) return
  span.event(`ses.${record.type}`, { 'mailstream.ses.bounce_type': record.bounceType }, record.timestamp)
  span.end()
}
