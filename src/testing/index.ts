// `mailstream/testing`: an in-process stand-in for the producer API, for users' unit tests.
import { z } from 'zod'
import { MailstreamError } from '../errors.js'
import { type Address, type AddressInput, type EmailJob, parseAddress, validateJob } from '../job.js'
import { renderMetrics } from '../metrics.js'
import { parseOptions, prefixSchema } from '../options.js'
import type { DeadLetter, EmailQueue } from '../queue/types.js'
import { createBatchWatchers } from '../queue/watch.js'
import type { TemplateRendererLike, Transport } from '../transport.js'
import { createMemoryTransport, type MemoryTransport } from '../transports/memory.js'
import { createBatches } from './batches.js'
import { createDelivery, type Run, type TestDelivery, type Totals } from './delivery.js'
import { createDeadLetters, createSuppression, type ListsContext, testStats } from './lists.js'
import { checkId, createProducer } from './producer.js'
import { createJobStore, stateOf } from './store.js'

export type { TestDelivery } from './delivery.js'

export interface TestQueueOptions<T extends Transport = MemoryTransport> {
  /**
   * Renders jobs that name a template: give the renderer your worker uses
   * (`createTemplateRenderer(...)`). Default: none, and a job that names a template is dead, as
   * with a worker that has no templates.
   */
  templates?: TemplateRendererLike
  /** Where messages go. Default: a new memory transport (`queue.transport`). */
  transport?: T
  /** Sender for jobs that do not name one, as the worker's `from`. */
  from?: AddressInput
  /** Reported as `queue.prefix`; no key is written anywhere. Default `email`. */
  prefix?: string
  /** Where the virtual clock starts, as a Date or epoch ms. Default: the time of the call. */
  now?: Date | number
  /** How long a final status is kept, on the virtual clock. Default 86400 (24 h). */
  statusTtlSeconds?: number
  /** How long an idempotency key keeps returning its job, on the virtual clock. Default 86400 (24 h). */
  idempotencyTtlSeconds?: number
  /** Retry delay after a transient failure, as the worker's. Default `{ baseMs: 1000, maxMs: 900000 }`. */
  backoff?: { baseMs?: number; maxMs?: number }
  /** Delay before a throttled send is tried again when the transport gives none, as the worker's. Default 1000. */
  throttleDelayMs?: number
}

/**
 * An `EmailQueue` in memory: `enqueue` and the other producer calls validate exactly as the
 * Redis queue does, and the queue itself plays the worker when the test says so (`drain`,
 * `advance`, `runAll`), on a virtual clock. See docs/testing.md for what it does not model.
 */
export interface TestQueue<T extends Transport = MemoryTransport> extends EmailQueue {
  /** The transport messages go to (a memory transport unless one was given). */
  readonly transport: T
  /** Every job written, as validated (ids, defaults, addresses normalised), oldest first. */
  readonly jobs: readonly EmailJob[]
  /** Every message sent, oldest first. */
  readonly sent: readonly TestDelivery[]
  /** The virtual clock, epoch ms: it moves only with `advance` and `runAll`. */
  readonly now: number
  /** Sends every job due now, in priority order (retries due now included). Resolves what it sent. */
  drain(): Promise<TestDelivery[]>
  /** Moves the clock `ms` forward, sending delayed jobs and retries as they fall due. Resolves what it sent. */
  advance(ms: number): Promise<TestDelivery[]>
  /** Jumps the clock from due time to due time until no job waits (delays and retries). Resolves what it sent. */
  runAll(): Promise<TestDelivery[]>
}

const optionsSchema = z.strictObject({
  templates: z
    .custom<TemplateRendererLike>(
      (value) =>
        typeof value === 'object' && value !== null && typeof (value as TemplateRendererLike).render === 'function',
      { message: 'must have a render(name, data) method (createTemplateRenderer)' },
    )
    .optional(),
  transport: z
    .custom<Transport>(
      (value) =>
        typeof value === 'object' &&
        value !== null &&
        typeof (value as Transport).send === 'function' &&
        typeof (value as Transport).name === 'string',
      { message: 'must be a transport: an object with a name and a send(message) method' },
    )
    .optional(),
  from: z
    .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
      message: 'must be an email address',
    })
    .optional(),
  prefix: prefixSchema,
  now: z.union([z.date(), z.number().int().nonnegative()]).optional(),
  statusTtlSeconds: z.number().int().positive().default(86_400),
  idempotencyTtlSeconds: z.number().int().positive().default(86_400),
  backoff: z
    .strictObject({
      baseMs: z.number().int().min(1).default(1000),
      maxMs: z.number().int().min(1).default(900_000),
    })
    .default({ baseMs: 1000, maxMs: 900_000 }),
  throttleDelayMs: z.number().int().min(1).default(1000),
})

/**
 * Validates a job exactly as `enqueue` does and returns it as stored (id, priority, attempts and
 * addresses filled in). Throws `MailstreamError` `E_VALIDATION` naming the first bad field.
 */
export function validateEmailJob(input: unknown): EmailJob {
  return validateJob(input).job
}

/**
 * Delivery runs one at a time, as if one worker with concurrency 1 were sending; each resolves the
 * deliveries it made, which are also added to `sent`.
 */
function createSerialRuns(assertOpen: () => void, sent: TestDelivery[]) {
  let running: Promise<unknown> = Promise.resolve()
  return (step: (run: Run) => Promise<void>): Promise<TestDelivery[]> => {
    assertOpen()
    const run: Run = { sent: [], tries: 0 }
    const result = running.then(async () => {
      try {
        await step(run)
      } finally {
        sent.push(...run.sent)
      }
      return run.sent
    })
    running = result.catch(() => {})
    return result
  }
}

/** An in-memory `EmailQueue` for unit tests: see `TestQueue`. */
export function createTestQueue<T extends Transport = MemoryTransport>(
  options: TestQueueOptions<T> = {},
): TestQueue<T> {
  const config = parseOptions(optionsSchema, options, 'createTestQueue')
  const transport = (config.transport ?? createMemoryTransport()) as T
  const startAt = config.now === undefined ? Date.now() : new Date(config.now).getTime()
  const store = createJobStore({ startAt, ...config })
  const batches = createBatches(store.now)
  const jobs: EmailJob[] = []
  const sent: TestDelivery[] = []
  const deadLetters: DeadLetter[] = []
  const totals: Totals = { sent: 0, failed: 0, suppressed: 0, retried: 0, throttled: 0 }
  let closed = false
  const assertOpen = () => {
    if (closed) throw new MailstreamError('E_CLOSED', 'the queue is closed')
  }
  const watchers = createBatchWatchers({
    subscribe: (batchId, listener) => batches.on(batchId, listener),
    snapshot: async (batchId) => batches.state(batchId),
  })
  const lists: ListsContext = { store, batches, deadLetters, suppressed: new Map(), totals, assertOpen }
  const delivery = createDelivery({
    ...lists,
    transport,
    templates: config.templates,
    from: config.from !== undefined ? (parseAddress(config.from) as Address) : undefined,
    policy: { backoff: config.backoff, throttleDelayMs: config.throttleDelayMs },
  })

  const serially = createSerialRuns(assertOpen, sent)

  return {
    prefix: config.prefix,
    transport,
    jobs,
    sent,
    get now() {
      return store.now()
    },
    ...createProducer({ store, batches, jobs, assertOpen }),

    async getStatus(id) {
      assertOpen()
      const record = store.get(checkId(id))
      return record ? stateOf(record) : null
    },

    async getBatch(batchId) {
      assertOpen()
      return batches.state(checkId(batchId, 'batchId'))
    },

    async decideAbTest(batchId) {
      assertOpen()
      checkId(batchId, 'batchId')
      throw new MailstreamError('E_NOT_FOUND', `batch ${batchId} has no A/B test (the test queue runs none)`, {
        field: 'batchId',
      })
    },

    onProgress(batchId, listener) {
      assertOpen()
      checkId(batchId, 'batchId')
      if (typeof listener !== 'function') {
        throw new MailstreamError('E_VALIDATION', 'listener: must be a function', { field: 'listener' })
      }
      return batches.on(batchId, listener)
    },

    watchBatch(batchId, watchOptions) {
      assertOpen()
      return watchers.watch(checkId(batchId, 'batchId'), watchOptions)
    },

    async batchStats(batchId) {
      assertOpen()
      return batches.stats(checkId(batchId, 'batchId'))
    },

    async stats() {
      assertOpen()
      return testStats(lists)
    },

    /** No Redis to reach: 0 ms while the queue is open. */
    async ping() {
      assertOpen()
      return 0
    },

    async metrics() {
      assertOpen()
      return renderMetrics(testStats(lists), {})
    },

    deadLetters: createDeadLetters(lists),
    suppression: createSuppression(lists),

    drain: () => serially((run) => delivery.drain(run)),

    advance(ms) {
      if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
        return Promise.reject(new MailstreamError('E_VALIDATION', 'ms: must be a number >= 0', { field: 'ms' }))
      }
      return serially((run) => delivery.advance(ms, run))
    },

    runAll: () => serially((run) => delivery.runAll(run)),

    async close() {
      closed = true
      watchers.close()
    },
  }
}
