// One job by id: its status, and cancelling it.
import { GROUP } from '../keys.js'
import { cancel } from '../lua/cancel.js'
import { parseStatus, STATUS, streamEntryOf } from '../status.js'
import type { EmailQueue, QueueContext } from './types.js'

/** How often `cancel` reads the job's batch again when it moved meanwhile. */
const CANCEL_TRIES = 3

export function createJobs(
  { client, keys, statusTtlSeconds, assertOpen }: QueueContext,
  checkId: (id: unknown, field?: string) => string,
): Pick<EmailQueue, 'cancel' | 'getStatus'> {
  return {
    async cancel(id) {
      assertOpen()
      checkId(id)
      for (let tries = 0; tries < CANCEL_TRIES; tries++) {
        const batchId = (await client.hget(keys.status(id), STATUS.batch)) ?? ''
        const { before, cancelled } = await cancel(client, keys, { id, batchId, now: Date.now(), statusTtlSeconds })
        if (before !== 'moved') return cancelled
      }
      return false
    },

    async getStatus(id) {
      assertOpen()
      checkId(id)
      const hash = await client.hgetall(keys.status(id))
      const state = parseStatus(id, hash)
      const entry = streamEntryOf(hash)
      if (state?.status === 'queued' && entry) {
        // A queued job whose entry a worker has taken is being sent.
        const pending = (await client
          .xpending(keys.stream(entry.priority), GROUP, entry.entryId, entry.entryId, 1)
          .catch(() => [])) as unknown[]
        if (pending.length > 0) state.status = 'active'
      }
      return state
    },
  }
}
