import { BATCH_DATA_FIELD, createBatchDataCache } from '../batch-data.js'
import { MailstreamError } from '../errors.js'
import { queueKeys } from '../keys.js'
import { createMetricsRecorder } from '../metrics.js'
import { createConnections } from './connections.js'
import { createDispatcher } from './dispatcher.js'
import { createEvents, toEvents, toMailstreamError } from './events.js'
import { createFetcher, heldKey } from './fetcher.js'
import { createKeeper, type Hold } from './keeper.js'
import { expectedRecipients } from './message.js'
import { type EmailWorkerOptions, parseWorkerOptions } from './options.js'
import { createOutcomes } from './outcomes.js'
import { createPacing } from './pacing.js'
import { ABANDONED, createProcess } from './process.js'
import { createScheduler } from './scheduler.js'
import { createSender } from './sender.js'
import type { EmailWorker, Work } from './types.js'

export type { EmailWorkerOptions } from './options.js'
export type { PaceEvent, WorkerDailyQuota, WorkerRateLimit } from './pacing.js'
export type {
  DeadEvent,
  EmailWorker,
  FailedEvent,
  RetryingEvent,
  SentEvent,
  SuppressedEvent,
  WorkerEventName,
  WorkerEvents,
} from './types.js'

/**
 * A worker: the pipeline `Redis -> fetcher -> Work -> process -> Processed -> outcomes -> events`,
 * with a lifecycle (`idle -> running -> stopping -> stopped`) around it. The units hold their
 * own state; they meet in `run(work)`.
 */
export function createEmailWorker(options: EmailWorkerOptions): EmailWorker {
  const config = parseWorkerOptions(options)
  const keys = queueKeys(config.prefix)
  const { consumer, transport } = config
  const events = createEvents()
  const { emit } = events
  const metrics = createMetricsRecorder()
  const connections = createConnections({ ...config, keys })

  let running = false
  let paused = false
  let quotaPaused = false
  let stopping: Promise<void> | undefined
  let hardStop = new AbortController()
  let inFlight = 0
  let processedSinceDrain = 0
  /** The jobs in flight here, by `heldKey`. */
  const held = new Map<string, Hold>()
  /** Jobs whose send is in progress: their slot is busy. Outcomes waiting to be written hold none. */
  const sending = new Set<Work>()

  /** Each loop reports the first failure of a run of failures: one `error` event per loop and outage. */
  function onRedisError(error: unknown, what: string, failures = 1): void {
    if (String((error as Error)?.message).includes('NOGROUP')) connections.groupsLost()
    if (failures === 1) emit('error', toMailstreamError(error, what))
  }

  const pacing = createPacing(config.prefix, config.rateLimit, config.dailyQuota, config.visibilityTimeoutMs / 4, {
    redis: () => connections.bounded(),
    abandoned: () => hardStop.signal.aborted,
    onPace: (event) => emit('pace', event),
    onQuota(pausedByQuota, reason) {
      quotaPaused = pausedByQuota
      if (pausedByQuota) void connections.interrupt()
      emit(pausedByQuota ? 'paused' : 'resumed', { reason })
    },
    onCharged: () => dispatcher.wake(),
    onError: (error, what) => onRedisError(error, what),
  })
  const sender = createSender(transport, config.sendTimeoutMs)
  const batchData = createBatchDataCache((batchId) =>
    connections.timed(connections.redis().hget(keys.batch(batchId), BATCH_DATA_FIELD), 'reading batch data'),
  )
  const process = createProcess({
    ...config,
    batchData: (batchId) => batchData.get(batchId),
    pacing,
    sender,
    metrics,
    signal: () => hardStop.signal,
  })
  const outcomes = createOutcomes({ ...config, connections, keys, metrics, onError: onRedisError })
  const fetcher = createFetcher({
    ...config,
    connections,
    keys,
    held,
    onPoison: (id) => emit('dead', { id, job: null, attempts: 0, error: 'stream entry has no job data' }),
  })
  const scheduler = createScheduler({
    connections,
    keys,
    intervalMs: config.schedulerIntervalMs,
    running: () => running,
    onError: onRedisError,
  })
  const keeper = createKeeper({
    ...config,
    connections,
    keys,
    held,
    active: () => running || (inFlight > 0 && !hardStop.signal.aborted),
    onError: onRedisError,
  })
  const dispatcher = createDispatcher({
    ...config,
    connections,
    fetcher,
    pacing,
    slots: {
      // Outcomes waiting to be written hold no slot, but are capped at three more rounds so that
      // a slow Redis slows fetching down.
      free: () => Math.min(config.concurrency - sending.size, 4 * config.concurrency - inFlight),
      sending: () => sending.size,
    },
    running: () => running,
    paused: () => paused,
    start,
    onIdle: () => drained(),
    onError: onRedisError,
  })
  let loops: Promise<unknown> = Promise.resolve()

  function drained(): void {
    if (inFlight === 0 && processedSinceDrain > 0 && running && dispatcher.idle) {
      emit('drained', { processed: processedSinceDrain })
      processedSinceDrain = 0
    }
  }

  function releaseSlot(work: Work): void {
    if (sending.delete(work)) dispatcher.wake()
  }

  function start(work: Work): void {
    const { streamIndex, entryId } = work.delivery
    const key = heldKey(streamIndex, entryId)
    // Never the same entry twice at once: the copy in flight finishes it.
    if (held.has(key)) return
    inFlight++
    sending.add(work)
    held.set(key, { streamIndex, entryId, keptAt: Date.now() })
    if (pacing && work.verdict === 'send') pacing.hold(work, expectedRecipients(work))
    void run(work).finally(() => {
      inFlight--
      releaseSlot(work)
      pacing?.release(work)
      held.delete(key)
      dispatcher.wake()
      if (!running && inFlight === 0) keeper.wake() // the keeper ends with the last job of a stop
      drained()
    })
  }

  /** One job: process it, free its slot, write its outcome, emit its events. */
  async function run(work: Work): Promise<void> {
    try {
      if (hardStop.signal.aborted) return // stopped hard before it started: it stays pending
      const processed = await process(work)
      if (processed === ABANDONED || hardStop.signal.aborted) return
      if (processed.pauseReason !== undefined)
        pauseWorker(`transport ${transport.name} asked to pause: ${processed.pauseReason}`)
      releaseSlot(work)
      const applied = await outcomes.write(processed).catch(() => undefined)
      if (applied === undefined) return // stopped before the outcome could be written: the entry stays pending
      processedSinceDrain++
      const { outcome } = processed
      if (applied && (outcome.kind === 'retry' || outcome.kind === 'throttle')) scheduler.dueAt(outcome.dueAt)
      for (const [event, payload] of toEvents(processed, applied)) emit(event, payload as never)
    } catch (error) {
      // Its entry is still pending here: own-recovery takes it back instead of the visibility timeout.
      fetcher.recoverLost()
      emit('error', toMailstreamError(error, `job ${work.delivery.jobId} failed unexpectedly`))
    }
  }

  function pauseWorker(reason: string): void {
    if (paused) return
    paused = true
    void connections.interrupt()
    emit('paused', { reason })
  }

  async function begin(): Promise<void> {
    connections.open()
    running = true
    stopping = undefined
    hardStop = new AbortController()
    outcomes.reset()
    // The host's boot never waits on an outage: with Redis unreachable the loops start at once and
    // create the groups when it is back; a frozen Redis costs at most commandTimeoutMs here.
    if (connections.reachable) {
      await connections.ensureGroups().catch((error: unknown) => {
        onRedisError(error, 'creating consumer groups failed, retrying in the background')
      })
    }
    if (!running) return // stopped meanwhile
    loops = Promise.all([dispatcher.run(), scheduler.run()])
    void keeper.run()
  }

  async function end(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs
    running = false
    dispatcher.wake()
    scheduler.wake()
    keeper.wake()
    // The dispatcher may be activating a last batch: wait for it, then for every job in flight.
    void connections.interrupt()
    const loopsEnded = await settlesWithin(loops, timeoutMs)
    const clean = await waitUntil(() => inFlight === 0 && outcomes.idle, Math.max(0, deadline - Date.now()))
    const left = inFlight
    if (!clean) {
      hardStop.abort()
      outcomes.abandon()
      pacing?.interrupt()
      sender.abortAll(new MailstreamError('E_CLOSED', 'worker stopped before the send finished'))
      dispatcher.wake()
    }
    // QUIT only to a Redis that answered the loops, within what is left of timeoutMs; else cut.
    await connections.close(clean && loopsEnded ? deadline - Date.now() : 0)
    keeper.wake() // the keeper sees the stop and ends (within one bounded call)
    emit('stopped', { abandoned: clean ? 0 : left })
  }

  return {
    get running() {
      return running
    },
    get paused() {
      return paused || quotaPaused
    },
    get pace() {
      return pacing?.pace
    },
    get inFlight() {
      return inFlight
    },
    get consumer() {
      return consumer
    },
    async start() {
      if (running) return
      if (stopping) await stopping
      await begin()
    },
    stop({ timeoutMs = 30_000 } = {}) {
      if (stopping) return stopping
      if (!running) return Promise.resolve()
      stopping = end(timeoutMs)
      return stopping
    },
    pause(reason = 'paused by the host') {
      pauseWorker(reason)
    },
    resume() {
      if (!paused) return
      paused = false
      dispatcher.wake()
      emit('resumed', {})
    },
    on: events.on,
  }
}

/** True when `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const ended = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms)
    }),
  ])
  clearTimeout(timer)
  return ended
}

function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const deadline = Date.now() + timeoutMs
    const check = () => {
      if (predicate()) return resolve(true)
      if (Date.now() >= deadline) return resolve(false)
      setTimeout(check, 10)
    }
    check()
  })
}
