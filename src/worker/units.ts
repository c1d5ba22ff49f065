// The worker's units wired to each other and to the lifecycle (worker/index.ts).
import { BATCH_DATA_FIELD, createBatchDataCache } from '../batch-data.js'
import { GROUP, queueKeys } from '../keys.js'
import { createMetricsRecorder } from '../metrics.js'
import { createTracing } from '../telemetry/tracing.js'
import { createAbTests } from './ab-tests.js'
import { createConnections } from './connections.js'
import { createDispatcher } from './dispatcher.js'
import { type createEvents, toMailstreamError } from './events.js'
import { createFetcher } from './fetcher.js'
import { createFlight } from './flight.js'
import { createHealth } from './health.js'
import { createKeeper } from './keeper.js'
import type { parseWorkerOptions } from './options.js'
import { createOutcomes } from './outcomes.js'
import { createPacing } from './pacing.js'
import { createProcess } from './process.js'
import { createScheduler } from './scheduler.js'
import { createSender } from './sender.js'
import type { Work, WorkerHealth } from './types.js'

export type Config = ReturnType<typeof parseWorkerOptions>
export type Emit = ReturnType<typeof createEvents>['emit']

/** What the units read of the worker's lifecycle, and the lifecycle reads of them. */
export interface WorkerState {
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
export function createUnits(
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

  const pacing = createPacing(
    config.prefix,
    config.rateLimit,
    config.dailyQuota,
    config.visibilityTimeoutMs / 4,
    {
      redis: () => connections.bounded(),
      abandoned: () => state.hardStop.signal.aborted,
      onPace: (event) => emit('pace', event),
      onProviderPace: (event) => emit('providerPace', event),
      onQuota(pausedByQuota, reason) {
        state.quotaPaused = pausedByQuota
        state.quotaReason = pausedByQuota ? reason : undefined
        if (pausedByQuota) void connections.interrupt()
        emit(pausedByQuota ? 'paused' : 'resumed', { reason })
      },
      onCharged: () => dispatcher.wake(),
      onError: (error, what) => onRedisError(error, what),
    },
    { rates: config.providerRates, pacing: config.providerPacing },
  )
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
    // Starts loading `@opentelemetry/api` (once per process): jobs taken before it loads get no span.
    tracing: createTracing(config.tracing),
    streams: keys.streams,
    group: GROUP,
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
  const abTests = createAbTests({
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
    abTests,
    keeper,
    dispatcher,
    onRedisError,
  }
}

export type Units = ReturnType<typeof createUnits>
