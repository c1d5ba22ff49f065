import { GROUP, type QueueKeys } from '../keys.js'
import { keep } from '../lua/keep.js'
import type { Connections } from './connections.js'
import { wakeable } from './wake.js'

/** An entry this worker holds, and when its idle time in Redis was last reset. */
export interface Hold {
  streamIndex: number
  entryId: string
  keptAt: number
}

/**
 * Resets the idle time of entries held for a third of the visibility timeout, so that no other
 * worker takes over a job this one is still working on (its outcome waiting for Redis, say).
 */
export function createKeeper(options: {
  connections: Connections
  keys: QueueKeys
  consumer: string
  visibilityTimeoutMs: number
  held: ReadonlyMap<string, Hold>
  /** True while entries may still need keeping: running, or stopping with jobs in flight. */
  active(): boolean
  onError(error: unknown, what: string, failures: number): void
}) {
  const { connections, held } = options
  const everyMs = Math.max(10, Math.floor(options.visibilityTimeoutMs / 3))
  const wake = wakeable()

  async function refresh(now: number): Promise<void> {
    const kept = [...held.values()].filter((hold) => now - hold.keptAt >= everyMs)
    if (kept.length === 0) return
    const call = { group: GROUP, consumer: options.consumer, entries: kept }
    await connections.timed(keep(connections.redis(), options.keys, call), 'keeping held entries')
    for (const hold of kept) hold.keptAt = now
  }

  return {
    async run(): Promise<void> {
      let failures = 0
      while (options.active()) {
        await wake.wait(everyMs)
        if (!options.active()) break
        try {
          await refresh(Date.now())
          failures = 0
        } catch (error) {
          options.onError(error, 'keeping held entries failed, retrying', ++failures)
        }
      }
    },
    wake: wake.wake,
  }
}
