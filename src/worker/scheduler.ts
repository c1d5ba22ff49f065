import type { QueueKeys } from '../keys.js'
import { promote } from '../lua/promote.js'
import type { Connections } from './connections.js'
import { runLoop, wakeable } from './wake.js'

/** Moves due jobs (delays, retries, throttles) from the delayed set back into their streams. */
export function createScheduler(options: {
  connections: Connections
  keys: QueueKeys
  intervalMs: number
  running(): boolean
  onError(error: unknown, what: string, failures: number): void
}) {
  const { connections, keys } = options
  const { timed } = connections
  const wake = wakeable()
  let nextDueAt = Number.POSITIVE_INFINITY

  async function promoteDue(): Promise<void> {
    const client = connections.redis()
    for (;;) {
      const now = Date.now()
      const ids = await timed(client.zrangebyscore(keys.delayed, '-inf', now, 'LIMIT', 0, 500), 'promoting due jobs')
      if (ids.length === 0) break
      await timed(promote(client, keys, { now, ids }), 'promoting due jobs')
      if (ids.length < 500) break
    }
    const next = await timed(client.zrange(keys.delayed, 0, 0, 'WITHSCORES'), 'promoting due jobs')
    nextDueAt = next[1] !== undefined ? Number(next[1]) : Number.POSITIVE_INFINITY
  }

  return {
    run(): Promise<void> {
      return runLoop(options, wake, 'promoting scheduled jobs failed, retrying', async () => {
        await promoteDue()
        return Math.max(0, Math.min(options.intervalMs, nextDueAt - Date.now()))
      })
    },

    /** A job was re-delayed until `dueAt`: look again then, not at the next interval. */
    dueAt(dueAt: number): void {
      if (dueAt >= nextDueAt) return
      nextDueAt = dueAt
      wake.wake()
    },

    wake: wake.wake,
  }
}
