import { createEvents, toEvents, toMailstreamError } from './events.js'
import { expectedRecipients } from './message.js'
import { type EmailWorkerOptions, parseWorkerOptions } from './options.js'
import { ABANDONED } from './process.js'
import { stopUnits } from './stop.js'
import type { EmailWorker, Work } from './types.js'
import { createUnits, type WorkerState } from './units.js'
import { verifyTransport } from './verify.js'

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
    loops = Promise.all([dispatcher.run(), scheduler.run(), units.abTests.run()])
    void keeper.run()
    if (config.verifyTransport)
      void verifyTransport(config.transport, config.sendTimeoutMs, (error) => emit('error', error))
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
