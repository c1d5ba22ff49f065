// The worker's stop: loops end, jobs in flight finish or are abandoned, the consumer leaves, connections close.
import { MailstreamError } from '../errors.js'
import type { Connections } from './connections.js'
import { toMailstreamError } from './events.js'
import { settlesWithin, waitUntil } from './flight.js'
import type { Config, Emit, Units, WorkerState } from './units.js'

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
export async function stopUnits(
  units: Units,
  state: WorkerState,
  config: Config,
  emit: Emit,
  loops: Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  const { connections, flight, pacing, sender, outcomes, scheduler, abTests, keeper, dispatcher } = units
  const deadline = Date.now() + timeoutMs
  state.running = false
  dispatcher.wake()
  scheduler.wake()
  abTests.wake()
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
