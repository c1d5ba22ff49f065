import type { MailstreamError, RetryClass } from '../errors.js'
import type { EmailJob } from '../job.js'
import type { PaceEvent } from './pacing.js'
import type { ProviderPaceEvent } from './providers.js'

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
  /** True when the job goes to the dead letters now (a `dead` event follows). */
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
  /** A mailbox provider's rate changed: slowed down after its replies, raised step by step after a cool-down. */
  providerPace: ProviderPaceEvent
}
export type WorkerEventName = keyof WorkerEvents

/** `worker.health()`: what a readiness or liveness probe needs, in one call that never rejects. */
export interface WorkerHealth {
  /** Running and Redis answered PING within the bound. A paused worker can still be ok. */
  ok: boolean
  state: 'idle' | 'running' | 'stopping' | 'stopped'
  running: boolean
  paused: boolean
  /** Why it is paused: `pause(reason)`, the transport (SES account paused) or the daily quota. */
  pauseReason?: string
  /** PING on the worker's command connection; `latencyMs` when it answered, `error` when not. */
  redis: { ok: boolean; latencyMs?: number; error?: string }
  /** The last `error` event, and when it came (epoch ms). */
  lastError?: { code: string; message: string; at: number }
  /** Jobs taken from Redis and not yet recorded as finished. */
  inFlight: number
  consumer: string
}

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
  /** As `on`, for the next event only. Returns the unsubscribe function. */
  once<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): () => void
  /** Removes a listener added with `on` or `once`. */
  off<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): void
  /**
   * The worker's state for a health check: running, paused and why, whether Redis answers PING
   * within `timeoutMs` (default `commandTimeoutMs`), the last error, jobs in flight. Never rejects.
   */
  health(options?: { timeoutMs?: number }): Promise<WorkerHealth>
}

/** One entry read from a send stream, before its job is looked at. */
export interface Delivery {
  streamIndex: number
  entryId: string
  jobId: string
  /** The job as JSON ('' when the entry has none). */
  payload: string
  /** Recipients, lower-case and ','-joined, as stored with the entry for the suppression check. */
  rcpt: string
  deliveries: number
}

/** An entry checked against its job's status and taken on by this worker. */
export interface Work {
  delivery: Delivery
  verdict: 'send' | 'over'
  attempts: number
  /** Recipients on the suppression list, left out of the send. */
  suppressed: string[]
  /** Throttles in a row the job has had so far (0 when not given). */
  throttles?: number
}

/** What happened to a job, as the finish script records it. */
export type Outcome =
  | { kind: 'sent'; messageId: string; rejected?: string[] }
  | { kind: 'retry' | 'throttle'; dueAt: number; error: string }
  | { kind: 'dead'; error: string }
  | { kind: 'suppressed'; reason: string }

/** A try that failed, for the `failed` event. */
export interface Failure {
  error: Error
  retry: RetryClass
}

/** One job after processing: the outcome to record, and what the events need to say. */
export interface Processed {
  work: Work
  job: EmailJob | null
  attempts: number
  /** Throttles in a row after this outcome, recorded with a retry or throttle (0 when not given). */
  throttles?: number
  outcome: Outcome
  failure?: Failure
  /** Set when the transport asked the worker to pause. */
  pauseReason?: string
  /** The job as JSON to write back with a retry or throttle, when not the delivery's (a parked job is marked). */
  payload?: string
}
