// The public shape of a queue, apart from its factory: the units in this folder implement parts of it.
import type { RunAbTestResult } from '../ab-test/state.js'
import type { MailstreamError } from '../errors.js'
import type { EmailJob, EmailJobInput } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { AdvertisingProfile } from '../korea/advertising.js'
import type { AdvertisingQueueOptions } from '../korea/options.js'
import type { MxClassifier, MxOptions } from '../providers/mx.js'
import type { RedisClient, RedisInput } from '../redis.js'
import type { JobState, JobStatusName } from '../status.js'
import type { Tracing, TracingOptions } from '../telemetry/tracing.js'
import type { BatchOptions, BuildRecipient, EnqueueBatchResult } from './batch-input.js'
import type { BatchProgress, BatchState, ProgressSubscription } from './batches.js'
import type { Hold, SendingHours } from './schedule.js'
import type { BatchStats, QueueStats } from './stats.js'
import type { WatchBatchOptions } from './watch.js'

export interface EmailQueueOptions {
  /** An ioredis client (left open by `close()`), ioredis options or a redis:// URL. */
  redis: RedisInput
  /**
   * Per-provider pacing at enqueue. `mx: true` classifies a recipient domain the built-in map does
   * not know (a company domain) by its MX hosts: Google -> gmail, Naver -> naver, Daum/Kakao ->
   * kakao, Outlook -> outlook, ... Each answer is cached in Redis (`<prefix>:mx:<domain>`,
   * `ttlSeconds`, default a day); a lookup that fails or takes over `timeoutMs` (2000) counts as
   * `other`, cached `failureTtlSeconds` (300). `enqueue` and `enqueueMany` only. Default off.
   */
  providers?: { mx?: boolean | Omit<MxOptions, 'maxLookups'> }
  /** Start of every key of this queue. Use a hash tag (`{email}`) on Redis Cluster. Default `email`. */
  prefix?: string
  /** How long a job's status is kept after it is final. Default 86400 (24 h). */
  statusTtlSeconds?: number
  /** How long an idempotency key keeps returning its job. Default 86400 (24 h). */
  idempotencyTtlSeconds?: number
  /**
   * Refuse an idempotency key reused with a job of other content (another recipient, subject,
   * template data...) with `E_IDEMPOTENCY_CONFLICT`, as Stripe and Resend answer 409, instead of
   * answering with the first job. Content is compared by a fingerprint stored with the key; the
   * id, the enqueue time and when the job is due are not part of it. A key written by a queue
   * without this option has no fingerprint and is answered with its job, as before. Default false.
   */
  strictIdempotency?: boolean
  /**
   * The renderer the workers use (`createTemplateRenderer`). Given, `enqueue` and `enqueueMany`
   * refuse a job whose template does not exist or whose data lacks a required variable
   * (`E_VALIDATION`, field `template` or `data.<name>`), and `enqueueBatch` one whose template does
   * not exist, instead of dead-lettering it at send time. Default: none (not checked).
   */
  templates?: TemplateCheck
  /**
   * Longest wait for Redis, in ms (10 to 600 000). A call rejects with `E_TIMEOUT` when Redis has
   * not answered within it: the whole call for most methods; each round trip for `enqueueMany`,
   * `enqueueBatch`, `cancelBatch` and `deadLetters.retry`, which may make many. `close()` gives
   * QUIT this long, then disconnects. A timed-out write may or may not have been made: retry it
   * with the same `idempotencyKey` (or job id). Default 5000.
   */
  commandTimeoutMs?: number
  /**
   * Called with an `E_REDIS` error when a connection the queue created (from a URL or options,
   * and its progress subscriber) fails: once per outage, not per reconnection attempt. Calls made
   * meanwhile reject on their own. Default: none (nothing is printed).
   */
  onError?: (error: MailstreamError) => void
  /**
   * When bulk mail may go out: `{ timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '20:00' }`.
   * A job of `enqueueBatch`, or of `enqueue`/`enqueueMany` with a `type` in `types` (default
   * `['newsletter']`), due outside it is scheduled at its next opening when it is enqueued.
   * Transactional types (verification-code, subscription-confirm, subscription-cancel, welcome)
   * are never held. Retries are not moved. Default: none.
   */
  sendingCalendar?: SendingHours
  /**
   * The complement: hours in which bulk mail does not go out (`{ timeZone: 'Asia/Seoul', from:
   * '21:00', to: '08:00' }`); held mail is scheduled at their end. Same jobs and `types` as
   * `sendingCalendar`, and may be given with it. Default: none.
   */
  quietHours?: SendingHours
  /**
   * The Korean advertising profile (정보통신망법 제50조, docs/korea.md): jobs with `advertising` need
   * each recipient's consent (looked up with `consent`, bounded by `consentTimeoutMs`) or the
   * existing-transaction exception, get `(광고)` in front of their subject, and are held out of
   * quiet hours; other jobs may not carry the mark. Default: none (`advertising` jobs are refused).
   */
  advertising?: AdvertisingQueueOptions
  /**
   * OpenTelemetry spans for `enqueue`, `enqueueMany` and `enqueueBatch`, whose context is stored
   * with each job so that the worker's and the SES webhook's spans link to it (see
   * docs/operations.md). Recorded when `@opentelemetry/api` is installed and an SDK is registered;
   * `false` turns them off. Default: on, without subjects (`{ recordSubject: true }` adds them).
   */
  tracing?: false | TracingOptions
}

/** The part of a template renderer a queue uses to check jobs at enqueue. */
export interface TemplateCheck {
  check(
    name: string,
    data?: Record<string, unknown>,
    options?: { locale?: string | undefined; requiredData?: boolean },
  ): Promise<void>
}

export interface EnqueueResult {
  id: string
  /** 'unknown' only for a duplicate whose job finished so long ago that its status expired. */
  status: JobStatusName | 'unknown'
  /** True when the id or idempotency key already named a job: nothing new was written. */
  duplicate: boolean
}

export interface DeadLetter {
  /** Id of the entry in the dead stream. */
  entryId: string
  id: string
  /** The job as it was enqueued; null for a poison entry that had no readable job. */
  job: EmailJob | null
  error: string
  attempts: number
  /** Epoch ms. */
  failedAt: number
}

export interface SuppressionEntry {
  address: string
  reason: string
  /** Epoch ms. */
  at: number
}

/** A type, not an interface: `guardMethods` walks it as a record of methods. */
export type DeadLetters = {
  /** Newest first. */
  list(options?: { count?: number }): Promise<DeadLetter[]>
  /** Sends dead jobs again with fresh attempts: one job id, or every letter. Resolves how many. */
  retry(target: string | { all: true }): Promise<number>
  /** Deletes letters (all, or those older than `before`). Resolves how many. */
  purge(options?: { before?: Date | number }): Promise<number>
}

/** A type, not an interface, as `DeadLetters`. */
export type SuppressionList = {
  add(address: string, reason?: string): Promise<void>
  remove(address: string): Promise<boolean>
  has(address: string): Promise<boolean>
  /** A page of the list; pass the returned cursor back for the next one ('0' when done). */
  list(options?: { cursor?: string; count?: number }): Promise<{ items: SuppressionEntry[]; cursor: string }>
}

export interface EmailQueue {
  readonly prefix: string
  enqueue(job: EmailJobInput): Promise<EnqueueResult>
  /** Validates every job first (one bad job writes nothing), then writes them pipelined. */
  enqueueMany(jobs: readonly EmailJobInput[]): Promise<EnqueueResult[]>
  /**
   * Streams recipients (an array or an async iterable of any size) into the jobs of one batch,
   * in pipelined chunks with bounded memory; one job per (batch, address), so enqueueing the same
   * batch again adds nothing. `build` maps a recipient to `{ to, data?, locale? }` (default: the
   * recipient as it is); `options` is what every job shares. Seals the batch at the end.
   */
  enqueueBatch<R>(
    batchId: string,
    recipients: Iterable<R> | AsyncIterable<R>,
    build?: BuildRecipient<R>,
    options?: BatchOptions,
  ): Promise<EnqueueBatchResult>
  /** Cancels every job of a batch that has not started sending. Resolves how many were cancelled. */
  cancelBatch(batchId: string): Promise<number>
  /** Counters, progress and state of a batch; null when unknown. */
  getBatch(batchId: string): Promise<BatchState | null>
  /**
   * Decides a batch's A/B test now, without waiting for `decideAfter` (a decision made before
   * stands), and enqueues the held recipients with the winner; a worker does the same when the
   * test is due. Safe to call twice or after an interruption: nobody gets two emails.
   * `E_NOT_FOUND` for a batch without a test.
   */
  decideAbTest(batchId: string, options?: { now?: number }): Promise<RunAbTestResult>
  /** Calls `listener` with each progress message of a batch. Returns the unsubscribe function. */
  onProgress(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription
  /**
   * A batch's progress as an async iterator: the current state first (when the batch exists),
   * then each update, never going backwards; it ends after the item with `done: true`. Opened
   * before the batch exists, it waits for the batch's first message. Ends without an error on
   * `break`/`return()`, when `signal` aborts and when the queue closes; rejects when Redis does
   * not confirm the subscription or answer the snapshot within `commandTimeoutMs`. A consumer
   * slower than the updates gets the latest progress, not every message.
   */
  watchBatch(batchId: string, options?: WatchBatchOptions): AsyncIterableIterator<BatchProgress>
  /** Cancels a queued or scheduled job. Resolves false when it is sending, final or unknown. */
  cancel(id: string): Promise<boolean>
  getStatus(id: string): Promise<JobState | null>
  stats(): Promise<QueueStats>
  /**
   * PING, for readiness probes: resolves the round trip in ms, or rejects with `E_TIMEOUT` when
   * Redis has not answered within `commandTimeoutMs` (`E_REDIS` when the connection fails).
   */
  ping(): Promise<number>
  /** Prometheus text exposition: depths, outcomes, SES events, send-duration and latency histograms. */
  metrics(): Promise<string>
  /** Totals and rates of one batch (sent, delivered, bounced, opened, ...); null for an unknown batch. */
  batchStats(batchId: string): Promise<BatchStats | null>
  deadLetters: DeadLetters
  suppression: SuppressionList
  close(): Promise<void>
}

/** What the units of a queue share: its clients, keys and settings. */
export interface QueueContext {
  /** Calls bounded as a whole (the queue's methods are guarded). */
  client: RedisClient
  /** The same client with each reply bounded: for calls that make many round trips. */
  steps: RedisClient
  keys: QueueKeys
  statusTtlSeconds: number
  idempotencyTtlSeconds: number
  /** Each job with an idempotency key carries its fingerprint; a key reused with other content is refused. */
  strictIdempotency: boolean
  /** Checks a job's template and data at enqueue, when the queue was given a renderer. */
  templates: TemplateCheck | undefined
  /** The sending calendar and quiet hours, when given: bulk mail held to their next opening. */
  hold: Hold | undefined
  /** The Korean advertising profile, when the queue has one. */
  advertising: AdvertisingProfile | undefined
  /** Throws `E_CLOSED` once the queue is closed. */
  assertOpen(): void
  tracing: Tracing
  /** Classifies unknown recipient domains by their MX hosts at enqueue (`providers: { mx }`). */
  mx?: MxClassifier | undefined
}
