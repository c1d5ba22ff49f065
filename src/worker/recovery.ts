import { GROUP, type QueueKeys } from '../keys.js'
import { parseEntryFields } from '../lua/entry.js'
import { reclaim } from '../lua/reclaim.js'
import type { Connections } from './connections.js'
import type { Delivery } from './types.js'

export interface RecoveryOptions {
  connections: Connections
  keys: QueueKeys
  consumer: string
  visibilityTimeoutMs: number
  /** True for an entry this worker holds in memory: never taken back. */
  isHeld(streamIndex: number, entryId: string): boolean
}

/**
 * Entries that went missing: this consumer's own, whose fetch reply was lost, and other
 * consumers', left pending past the visibility timeout. Keeps one reclaim cursor per stream.
 */
export function createRecovery(options: RecoveryOptions) {
  const { connections, keys, consumer } = options
  const { redis, timed } = connections
  const reclaimCursors = ['-', '-', '-']
  const reclaimEveryMs = Math.min(options.visibilityTimeoutMs / 2, 30_000)
  let lastReclaimAt = 0

  return {
    /** Until the next reclaim of stale entries is due (ms, negative when overdue). */
    untilReclaim(): number {
      return lastReclaimAt + reclaimEveryMs - Date.now()
    },

    /** Entries other consumers left pending past the visibility timeout, when a reclaim is due (the script skips this one's). */
    async stale(count: number): Promise<Delivery[]> {
      if (Date.now() - lastReclaimAt < reclaimEveryMs) return []
      lastReclaimAt = Date.now()
      const out: Delivery[] = []
      for (let index = 0; index < 3 && out.length < count; index++) {
        const call = {
          stream: keys.streams[index] as string,
          group: GROUP,
          consumer,
          minIdleMs: options.visibilityTimeoutMs,
          cursor: reclaimCursors[index] as string,
          count: count - out.length,
        }
        const { cursor, entries } = await timed(reclaim(redis(), call), 'reclaiming stale entries')
        reclaimCursors[index] = cursor
        for (const entry of entries) out.push({ streamIndex: index + 1, ...entry })
      }
      return out
    },

    /**
     * Entries pending for this consumer in Redis that it does not hold in memory: a fetch whose
     * reply was lost when the connection dropped. Taken back at once instead of after the
     * visibility timeout.
     */
    async own(count: number): Promise<Delivery[]> {
      const out: Delivery[] = []
      for (let index = 0; index < 3 && out.length < count; index++) {
        const stream = keys.streams[index] as string
        const pending = (await timed(
          redis().xpending(stream, GROUP, '-', '+', 1000, consumer),
          'recovering entries',
        )) as [string, string, number, number][]
        const lost = pending.filter(([entryId]) => !options.isHeld(index + 1, entryId)).slice(0, count - out.length)
        if (lost.length === 0) continue
        const deliveries = new Map(lost.map(([entryId, , , times]) => [entryId, Number(times)]))
        const claimed = (await timed(
          redis().xclaim(stream, GROUP, consumer, 0, ...deliveries.keys()),
          'recovering entries',
        )) as ([string, string[]] | null)[]
        for (const entry of claimed) {
          if (!entry) continue
          const [entryId, fields] = entry
          out.push({
            streamIndex: index + 1,
            entryId,
            ...parseEntryFields(fields),
            deliveries: (deliveries.get(entryId) ?? 0) + 1,
          })
        }
      }
      return out
    },
  }
}

export type Recovery = ReturnType<typeof createRecovery>
