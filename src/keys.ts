import { PRIORITIES, type Priority } from './job.js'

/** The consumer group on every send stream. */
export const GROUP = 'workers'

/**
 * The CLIENT SETNAME of the blocking connection of the worker whose consumer is `consumer` (Redis
 * names have no spaces); `stats()` finds live workers by it.
 */
export const workerConnectionName = (consumer: string): string => `mailstream:${consumer}`.replace(/\s/g, '_')

/** Redis key layout of one queue (DESIGN section 2). Every key starts with the prefix. */
export interface QueueKeys {
  prefix: string
  /** Send streams in priority order: high, normal, low. */
  streams: readonly [string, string, string]
  stream(priority: Priority): string
  delayed: string
  dead: string
  suppressed: string
  /** Totals since the queue began: sent, failed, suppressed, retried, throttled (and webhook events). */
  stats: string
  /** Histograms recorded by the workers (send duration, delivery latency, rate-limit waits). */
  metrics: string
  /** Marks an SNS message as applied (dedupe), by SNS MessageId. */
  sns(messageId: string): string
  /** Which counters an SES message has counted already, by SES message id. */
  ses(messageId: string): string
  status(id: string): string
  idem(key: string): string
  batch(batchId: string): string
  progress(batchId: string): string
  /** A/B tests waiting for their decision: batch ids scored by when they are due (or their lease ends). */
  abTests: string
  /** The recipients of an A/B test batch held back for the winner (JSON per recipient). */
  abRest(batchId: string): string
}

export function queueKeys(prefix: string): QueueKeys {
  const streams = PRIORITIES.map((priority) => `${prefix}:send:${priority}`) as [string, string, string]
  return {
    prefix,
    streams,
    stream: (priority) => streams[PRIORITIES.indexOf(priority)] as string,
    delayed: `${prefix}:delayed`,
    dead: `${prefix}:dead`,
    suppressed: `${prefix}:suppressed`,
    stats: `${prefix}:stats`,
    metrics: `${prefix}:metrics`,
    sns: (messageId) => `${prefix}:sns:${messageId}`,
    ses: (messageId) => `${prefix}:ses:${messageId}`,
    status: (id) => `${prefix}:status:${id}`,
    idem: (key) => `${prefix}:idem:${key}`,
    batch: (batchId) => `${prefix}:batch:${batchId}`,
    progress: (batchId) => `${prefix}:progress:${batchId}`,
    abTests: `${prefix}:abtests`,
    abRest: (batchId) => `${prefix}:batch:${batchId}:rest`,
  }
}

export const STATUS_TTL_SECONDS = 24 * 3600
export const IDEMPOTENCY_TTL_SECONDS = 24 * 3600

/** Redis key layout of the sequences of one queue (docs/sequences.md): under the queue's prefix, so in its slot. */
export interface SequenceKeys {
  /** Zset of enrolment keys by the epoch ms they are next due (a claimed one: when its lease ends). */
  due: string
  /** One hash per (sequence, address), by the address's hash. */
  enrolment(sequenceId: string, addressHash: string): string
  /** Counters of one sequence: enrolled, status:<status>, at:<step>, sent:<step>, exited:<reason>. */
  stats(sequenceId: string): string
}

export function sequenceKeys(prefix: string): SequenceKeys {
  return {
    due: `${prefix}:seq-due`,
    enrolment: (sequenceId, addressHash) => `${prefix}:seq:${sequenceId}:${addressHash}`,
    stats: (sequenceId) => `${prefix}:seq-stats:${sequenceId}`,
  }
}
