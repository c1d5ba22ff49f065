import type { ValidatedJob } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import type { Tracing } from '../telemetry/tracing.js'
import type { EnqueueResult } from './types.js'

/**
 * What the webhook handler, the dashboard and the command line need of a queue beyond its public
 * methods: its Redis client and its keys. Kept off the public `EmailQueue` object, so that users
 * go through the queue's methods (bounded, validated) rather than write to its keys.
 */
export interface QueueInternals {
  redis: RedisClient
  keys: QueueKeys
  prefix: string
  /** What `enqueue` checks (the job, then its template with the queue's renderer), without writing it. */
  validate(input: unknown): Promise<ValidatedJob>
  /** Writes jobs validated earlier, as `enqueueMany` does; each Redis reply bounded. */
  write(jobs: readonly ValidatedJob[]): Promise<EnqueueResult[]>
  /** The queue's tracing, which the SES webhook handler records its spans with. */
  tracing: Tracing
}

const internals = new WeakMap<object, QueueInternals>()

/** Called by `createEmailQueue` for each queue it makes. */
export function registerQueue(queue: object, inner: QueueInternals): void {
  internals.set(queue, inner)
}

/** True for a queue made by `createEmailQueue`: the one check every consumer of a queue uses. */
export function isEmailQueue(value: unknown): boolean {
  return typeof value === 'object' && value !== null && internals.has(value)
}

/** The internals of a queue made by `createEmailQueue`; throws for anything else. */
export function queueInternals(queue: object): QueueInternals {
  const inner = internals.get(queue)
  if (!inner) throw new TypeError('[mailstream] not a queue made by createEmailQueue')
  return inner
}
