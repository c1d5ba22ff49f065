import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import { ID_RE } from '../job.js'
import { IDEMPOTENCY_TTL_SECONDS, queueKeys, STATUS_TTL_SECONDS } from '../keys.js'
import { createAdvertisingProfile } from '../korea/advertising.js'
import { advertisingQueueSchema } from '../korea/options.js'
import { defineScripts } from '../lua/index.js'
import { renderMetrics } from '../metrics.js'
import { checkClusterPrefix, parseOptions, prefixSchema, redisInputSchema } from '../options.js'
import { createMxClassifier, type MxOptions, type ResolveMx } from '../providers/mx.js'
import {
  bounded,
  boundedClient,
  commandTimeoutSchema,
  createOutageReporter,
  type ErrorReport,
  guardMethods,
  onErrorSchema,
  quit,
  resolveRedis,
} from '../redis.js'
import { tracingSchema } from '../telemetry/options.js'
import { createTracing } from '../telemetry/tracing.js'
import { createBatchMethods } from './batch-methods.js'
import { createProgressListeners, getBatch } from './batches.js'
import { createDeadLetters } from './dead-letters.js'
import { createEnqueue, createEnqueueCoalescer } from './enqueue.js'
import { registerQueue } from './internals.js'
import { createJobs } from './jobs.js'
import { createHold, sendingHoursSchema } from './schedule.js'
import { queueStats } from './stats.js'
import { createSuppressionList } from './suppression.js'
import type { EmailQueue, EmailQueueOptions, QueueContext, TemplateCheck } from './types.js'
import { createBatchWatchers } from './watch.js'

export type { QueueStats, StreamStats } from './stats.js'
export type { DeadLetter, EmailQueue, EmailQueueOptions, EnqueueResult, SuppressionEntry } from './types.js'

const optionsSchema = z.strictObject({
  redis: redisInputSchema,
  prefix: prefixSchema,
  statusTtlSeconds: z.number().int().positive().default(STATUS_TTL_SECONDS),
  idempotencyTtlSeconds: z.number().int().positive().default(IDEMPOTENCY_TTL_SECONDS),
  strictIdempotency: z.boolean().default(false),
  templates: z
    .custom<TemplateCheck>(
      (value) => typeof value === 'object' && value !== null && typeof (value as TemplateCheck).check === 'function',
      'must be a template renderer (createTemplateRenderer)',
    )
    .optional(),
  commandTimeoutMs: commandTimeoutSchema,
  onError: onErrorSchema,
  sendingCalendar: sendingHoursSchema(false).optional(),
  quietHours: sendingHoursSchema(true).optional(),
  advertising: advertisingQueueSchema.optional(),
  tracing: tracingSchema,
  providers: z
    .strictObject({
      mx: z
        .union([
          z.boolean(),
          z.strictObject({
            resolve: z
              .custom<ResolveMx>((value) => typeof value === 'function', { message: 'must be a function' })
              .optional(),
            timeoutMs: z.number().int().min(1).max(30_000).optional(),
            ttlSeconds: z
              .number()
              .int()
              .min(1)
              .max(30 * 86_400)
              .optional(),
            failureTtlSeconds: z.number().int().min(1).max(86_400).optional(),
          }),
        ])
        .default(false),
    })
    .optional(),
})

/** Calls that may make many round trips: bounded per reply, not as a whole. */
const LONG_CALLS = ['enqueueMany', 'enqueueBatch', 'cancelBatch', 'decideAbTest', 'deadLetters.retry']

function checkId(id: unknown, field = 'id'): string {
  if (typeof id !== 'string' || !ID_RE.test(id)) {
    throw new MailstreamError('E_VALIDATION', `${field}: must be 1-128 characters of A-Z a-z 0-9 _ . : -`, { field })
  }
  return id
}

export function createEmailQueue(options: EmailQueueOptions): EmailQueue {
  const config = parseOptions(optionsSchema, options, 'createEmailQueue')
  const mx = config.providers?.mx ?? false
  const mxOptions: MxOptions | undefined =
    mx === false
      ? undefined
      : mx === true
        ? {}
        : Object.fromEntries(Object.entries(mx).filter(([, value]) => value !== undefined))
  const hold = createHold(config.sendingCalendar, config.quietHours) // may throw: before any connection
  // Before any connection is made: bad quiet hours throw E_CONFIG.
  const advertising = config.advertising
    ? createAdvertisingProfile(config.advertising, config.commandTimeoutMs)
    : undefined
  const { client, owned } = resolveRedis(config.redis)
  checkClusterPrefix(client, config.prefix, 'createEmailQueue')
  defineScripts(client)
  const timeoutMs = config.commandTimeoutMs
  const keys = queueKeys(config.prefix)
  const reporter = createOutageReporter(config.onError as ErrorReport | undefined, `queue ${config.prefix}: Redis`)
  const unwatch = owned ? reporter.watch(client) : () => {}
  const progress = createProgressListeners(client, keys, { timeoutMs, reporter })
  const watchers = createBatchWatchers({
    subscribe: progress.on,
    snapshot: (batchId) => bounded(getBatch(client, keys, batchId), timeoutMs, 'watchBatch'),
  })
  let closed = false
  // Starts loading `@opentelemetry/api` (once per process); calls made before it loads get no span.
  const tracing = createTracing(config.tracing)
  const context: QueueContext = {
    client,
    // Most calls are bounded as a whole (guardMethods below); the LONG_CALLS use this view of the
    // client instead, on which each reply is bounded.
    steps: boundedClient(client, timeoutMs),
    keys,
    statusTtlSeconds: config.statusTtlSeconds,
    idempotencyTtlSeconds: config.idempotencyTtlSeconds,
    strictIdempotency: config.strictIdempotency,
    templates: config.templates,
    hold,
    advertising,
    assertOpen() {
      if (closed) throw new MailstreamError('E_CLOSED', 'the queue is closed')
    },
    tracing,
    mx: mxOptions
      ? createMxClassifier(boundedClient(client, timeoutMs), (domain) => `${keys.prefix}:mx:${domain}`, mxOptions)
      : undefined,
  }
  const { assertOpen } = context
  const coalescer = createEnqueueCoalescer(context)

  const { validate, write, ...enqueueMethods } = createEnqueue(context, coalescer)
  const methods: Omit<EmailQueue, 'prefix' | 'onProgress' | 'watchBatch' | 'close'> = {
    ...enqueueMethods,
    ...createJobs(context, checkId),

    ...createBatchMethods(context, checkId),

    async stats() {
      assertOpen()
      return queueStats(client, keys)
    },

    async metrics() {
      assertOpen()
      const [stats, recorded] = await Promise.all([queueStats(client, keys), client.hgetall(keys.metrics)])
      return renderMetrics(stats, recorded)
    },

    async ping() {
      assertOpen()
      const started = performance.now()
      await client.ping()
      return Math.round((performance.now() - started) * 100) / 100
    },

    deadLetters: createDeadLetters(context, checkId),
    suppression: createSuppressionList(context),
  }

  const queue: EmailQueue = {
    prefix: config.prefix,
    ...guardMethods(methods, timeoutMs, { unbounded: LONG_CALLS }),

    onProgress(batchId, listener) {
      assertOpen()
      checkId(batchId, 'batchId')
      if (typeof listener !== 'function') {
        throw new MailstreamError('E_VALIDATION', 'listener: must be a function', { field: 'listener' })
      }
      return progress.on(batchId, listener)
    },

    watchBatch(batchId, watchOptions = {}) {
      assertOpen()
      checkId(batchId, 'batchId')
      const { signal } = watchOptions
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw new MailstreamError('E_VALIDATION', 'signal: must be an AbortSignal', { field: 'signal' })
      }
      return watchers.watch(batchId, watchOptions)
    },

    async close() {
      if (closed) return
      closed = true
      coalescer.flush() // the calls gathered in this turn go out before QUIT
      watchers.close()
      // Both within timeoutMs, at once; neither waits on a frozen Redis.
      await Promise.all([progress.close(), owned ? quit(client, timeoutMs) : undefined])
      unwatch()
    },
  }
  registerQueue(queue, {
    redis: client,
    keys,
    prefix: config.prefix,
    tracing,
    validate: (input) => bounded(validate(input), timeoutMs, 'validate'),
    write,
  })
  return queue
}
