import { BATCH_DATA_FIELD, createBatchDataCache } from '../batch-data.js'
import { MailstreamError } from '../errors.js'
import { queueKeys } from '../keys.js'
import { createMetricsRecorder } from '../metrics.js'
import { type Connections, createConnections } from './connections.js'
import { createDispatcher } from './dispatcher.js'
import { createEvents, toEvents, toMailstreamError } from './events.js'
import { createFetcher } from './fetcher.js'
import { createFlight, settlesWithin, waitUntil } from './flight.js'
import { createHealth } from './health.js'
import { createKeeper } from './keeper.js'
import { expectedRecipients } from './message.js'
import { type EmailWorkerOptions, parseWorkerOptions } from './options.js'
import { createOutcomes } from './outcomes.js'
import { createPacing } from './pacing.js'
import { ABANDONED, createProcess } from './process.js'
import { createScheduler } from './scheduler.js'
import { createSender } from './sender.js'
import type { EmailWorker, Work, WorkerHealth } from './types.js'

type Config = ReturnType<typeof parseWorkerOptions>
type Emit = ReturnType<typeof createEvents>['emit']

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
  WorkerHealth,
} from './types.js'

/** What the units read of the worker's lifecycle, and the lifecycle reads of them. */
interface WorkerState {
  running: boolean
  paused: boolean
  /** Why `paused` is set (the host's reason, or the transport's). */
  pauseReason: string | undefined
  quotaPaused: boolean
  quotaReason: string | undefined
  /** Aborted on a hard stop: every wait and send in flight ends. */
  hardStop: AbortController
  phase: WorkerHealth['state']
}

/** The worker's units, wired to each other and to the lifecycle through `state` and `hooks`. */
function createUnits(
  config: Config,
  state: WorkerState,
  events: ReturnType<typeof createEvents>,
  hooks: { start(work: Work): void; drained(): void },
) {
  const { emit } = events
  const keys = queueKeys(config.prefix)
  const metrics = createMetricsRecorder()
  const connections = createConnections({ ...config, keys })
  const flight = createFlight(config.concurrency)

  /** Each loop reports the first failure of a run of failures: one `error` event per loop and outage. */
  function onRedisError(error: unknown, what: string, failures = 1): void {
    if (String((error as Error)?.message).includes('NOGROUP')) connections.groupsLost()
    if (failures === 1) emit('error', toMailstreamError(error, what))
  }

  const pacing = createPacing(config.prefix, config.rateLimit, config.dailyQuota, config.visibilityTimeoutMs / 4, {
    redis: () => connections.bounded(),
    abandoned: () => state.hardStop.signal.aborted,
    onPace: (event) => emit('pace', event),
    onQuota(pausedByQuota, reason) {
      state.quotaPaused = pausedByQuota
      state.quotaReason = pausedByQuota ? reason : undefined
      if (pausedByQuota) void connections.interrupt()
      emit(pausedByQuota ? 'paused' : 'resumed', { reason })
    },
    onCharged: () => dispatcher.wake(),
    onError: (error, what) => onRedisError(error, what),
  })
  const sender = createSender(config.transport, config.sendTimeoutMs)
  const batchData = createBatchDataCache((batchId) =>
    connections.timed(connections.redis().hget(keys.batch(batchId), BATCH_DATA_FIELD), 'reading batch data'),
  )
  const process = createProcess({
    ...config,
    batchData: (batchId) => batchData.get(batchId),
    pacing,
    sender,
    metrics,
    signal: () => state.hardStop.signal,
  })
  const running = () => state.running
  const outcomes = createOutcomes({ ...config, connections, keys, metrics, onError: onRedisError })
  const fetcher = createFetcher({
    ...config,
    connections,
    keys,
    held: flight.held,
    onPoison: (id) => emit('dead', { id, job: null, attempts: 0, error: 'stream entry has no job data' }),
  })
  const scheduler = createScheduler({
    connections,
    keys,
    intervalMs: config.schedulerIntervalMs,
    running,
    onError: onRedisError,
  })
  const keeper = createKeeper({
    ...config,
    connections,
    keys,
    held: flight.held,
    active: () => state.running || (flight.count > 0 && !state.hardStop.signal.aborted),
    onError: onRedisError,
  })
  const dispatcher = createDispatcher({
    ...config,
    connections,
    fetcher,
    pacing,
    slots: flight,
    running,
    paused: () => state.paused,
    start: hooks.start,
    onIdle: hooks.drained,
    onError: onRedisError,
  })
  const health = createHealth({
    ...config,
    events,
    connections,
    status: () => ({
      state: state.phase,
      running: state.running,
      paused: state.paused || state.quotaPaused,
      pauseReason: state.paused ? state.pauseReason : state.quotaReason,
      inFlight: flight.count,
    }),
  })
  return {
    health,
    connections,
    flight,
    pacing,
    sender,
    process,
    outcomes,
    fetcher,
    scheduler,
    keeper,
    dispatcher,
    onRedisError,
  }
}

/**
 * After a clean stop, the consumer leaves the group when it holds nothing, so that stopped workers
 * do not pile up in it; within `ms` (commandTimeoutMs and what is left of the stop's timeout).
 */
async function leaveGroup(connections: Connections, ms: number, emit: Emit): Promise<void> {
  if (ms <= 0 || !connections.reachable) return
  try {
    await connections.leave(ms)
  } catch (error) {
    emit('error', toMailstreamError(error, 'removing the consumer from the group failed'))
  }
}

/**
 * The stop: the loops end, the jobs in flight finish within `timeoutMs` or are abandoned (their
 * entries stay pending for recovery), the consumer leaves the group when it holds nothing, and the
 * connections close within what is left.
 */
async function stopUnits(
  units: ReturnType<typeof createUnits>,
  state: WorkerState,
  config: Config,
  emit: Emit,
  loops: Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  const { connections, flight, pacing, sender, outcomes, scheduler, keeper, dispatcher } = units
  const deadline = Date.now() + timeoutMs
  state.running = false
  dispatcher.wake()
  scheduler.wake()
  keeper.wake()
  // The dispatcher may be activating a last batch: wait for it, then for every job in flight.
  void connections.interrupt()
  const loopsEnded = await settlesWithin(loops, timeoutMs)
  const clean = await waitUntil(() => flight.count === 0 && outcomes.idle, Math.max(0, deadline - Date.now()))
  const left = flight.count
  if (!clean) {
    state.hardStop.abort()
    outcomes.abandon()
    pacing?.interrupt()
    sender.abortAll(new MailstreamError('E_CLOSED', 'worker stopped before the send finished'))
    dispatcher.wake()
  }
  if (clean && loopsEnded) await leaveGroup(connections, Math.min(config.commandTimeoutMs, deadline - Date.now()), emit)
  // QUIT only to a Redis that answered the loops, within what is left of timeoutMs; else cut.
  await connections.close(clean && loopsEnded ? deadline - Date.now() : 0)
  keeper.wake() // the keeper sees the stop and ends (within one bounded call)
  state.phase = 'stopped'
  emit('stopped', { abandoned: clean ? 0 : left })
}

/**
 * A worker: the pipeline `Redis -> fetcher -> Work -> process -> Processed -> outcomes -> events`,
 * with a lifecycle (`idle -> running -> stopping -> stopped`) around it. The units hold their
 * own state; they meet in `run(work)`.
 */
export function createEmailWorker(options: EmailWorkerOptions): EmailWorker {
  const config = parseWorkerOptions(options)
  const events = createEvents()
  const { emit } = events
  const state: WorkerState = {
    running: false,
    paused: false,
    pauseReason: undefined,
    quotaPaused: false,
    quotaReason: undefined,
    hardStop: new AbortController(),
    phase: 'idle',
  }
  const units = createUnits(config, state, events, { start, drained })
  const { connections, flight, pacing, process, outcomes, fetcher, scheduler, keeper, dispatcher } = units
  let stopping: Promise<void> | undefined
  let loops: Promise<unknown> = Promise.resolve()

  function drained(): void {
    if (flight.count > 0 || !state.running || !dispatcher.idle) return
    const processed = flight.drain()
    if (processed > 0) emit('drained', { processed })
  }

  function start(work: Work): void {
    const key = flight.take(work)
    if (key === undefined) return // never the same entry twice at once
    if (pacing && work.verdict === 'send') pacing.hold(work, expectedRecipients(work))
    void run(work).finally(() => {
      flight.finish(work, key)
      pacing?.release(work)
      dispatcher.wake()
      if (!state.running && flight.count === 0) keeper.wake() // the keeper ends with the last job of a stop
      drained()
    })
  }

  /** One job: process it, free its slot, write its outcome, emit its events. */
  async function run(work: Work): Promise<void> {
    try {
      if (state.hardStop.signal.aborted) return // stopped hard before it started: it stays pending
      const processed = await process(work)
      if (processed === ABANDONED || state.hardStop.signal.aborted) return
      if (processed.pauseReason !== undefined)
        pause(`transport ${config.transport.name} asked to pause: ${processed.pauseReason}`)
      if (flight.releaseSlot(work)) dispatcher.wake()
      const applied = await outcomes.write(processed).catch(() => undefined)
      if (applied === undefined) return // stopped before the outcome could be written: the entry stays pending
      flight.processed()
      const { outcome } = processed
      if (applied && (outcome.kind === 'retry' || outcome.kind === 'throttle')) scheduler.dueAt(outcome.dueAt)
      for (const [event, payload] of toEvents(processed, applied)) emit(event, payload as never)
    } catch (error) {
      // Its entry is still pending here: own-recovery takes it back instead of the visibility timeout.
      fetcher.recoverLost()
      emit('error', toMailstreamError(error, `job ${work.delivery.jobId} failed unexpectedly`))
    }
  }

  function pause(reason: string): void {
    if (state.paused) return
    state.paused = true
    state.pauseReason = reason
    void connections.interrupt()
    emit('paused', { reason })
  }

  async function begin(): Promise<void> {
    connections.open()
    state.running = true
    state.phase = 'running'
    stopping = undefined
    state.hardStop = new AbortController()
    outcomes.reset()
    // The host's boot never waits on an outage: with Redis unreachable the loops start at once and
    // create the groups when it is back; a frozen Redis costs at most commandTimeoutMs here.
    if (connections.reachable) {
      await connections.ensureGroups().catch((error: unknown) => {
        units.onRedisError(error, 'creating consumer groups failed, retrying in the background')
      })
    }
    if (!state.running) return // stopped meanwhile
    loops = Promise.all([dispatcher.run(), scheduler.run()])
    void keeper.run()
  }

  return {
    get running() {
      return state.running
    },
    get paused() {
      return state.paused || state.quotaPaused
    },
    get pace() {
      return pacing?.pace
    },
    get inFlight() {
      return flight.count
    },
    get consumer() {
      return config.consumer
    },
    async start() {
      if (state.running) return
      if (stopping) await stopping
      await begin()
    },
    stop({ timeoutMs = 30_000 } = {}) {
      if (stopping) return stopping
      if (!state.running) return Promise.resolve()
      state.phase = 'stopping'
      stopping = stopUnits(units, state, config, emit, loops, timeoutMs)
      return stopping
    },
    pause(reason = 'paused by the host') {
      pause(reason)
    },
    resume() {
      if (!state.paused) return
      state.paused = false
      state.pauseReason = undefined
      dispatcher.wake()
      emit('resumed', {})
    },
    on: events.on,
    once: events.once,
    off: events.off,
    health: units.health,
  }
}
