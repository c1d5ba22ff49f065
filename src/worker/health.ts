import type { Connections } from './connections.js'
import type { Events } from './events.js'
import type { WorkerHealth } from './types.js'

/** What the lifecycle knows of itself, read at each health check. */
export type LifecycleStatus = Pick<WorkerHealth, 'state' | 'running' | 'paused' | 'pauseReason' | 'inFlight'>

/**
 * `worker.health()`: the lifecycle's status, a PING on the command connection within a bound,
 * and the last `error` event (kept from the moment the worker is made). Never rejects.
 */
export function createHealth(options: {
  events: Events
  connections: Connections
  consumer: string
  commandTimeoutMs: number
  status(): LifecycleStatus
}) {
  let lastError: WorkerHealth['lastError']
  options.events.on('error', (error) => {
    lastError = { code: error.code, message: error.message, at: Date.now() }
  })

  return async ({ timeoutMs = options.commandTimeoutMs }: { timeoutMs?: number } = {}): Promise<WorkerHealth> => {
    const { state, running, paused, pauseReason, inFlight } = options.status()
    const redis = await options.connections.ping(timeoutMs)
    return {
      ok: running && redis.ok,
      state,
      running,
      paused,
      ...(paused && pauseReason !== undefined && { pauseReason }),
      redis,
      ...(lastError && { lastError: { ...lastError } }),
      inFlight,
      consumer: options.consumer,
    }
  }
}
