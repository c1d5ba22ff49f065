// The test queue's dead letters, suppression list and stats, kept in memory.
import { MailstreamError } from '../errors.js'
import { addressKey, PRIORITIES, type Priority } from '../job.js'
import { EVENT_TOTALS, type QueueStats, ratesOf, type StreamStats } from '../queue/stats.js'
import { checkReason } from '../queue/suppression.js'
import type { DeadLetter, DeadLetters, SuppressionEntry, SuppressionList } from '../queue/types.js'
import type { Batches } from './batches.js'
import type { Totals } from './delivery.js'
import { checkId } from './producer.js'
import { DELAYED, type JobStore } from './store.js'

export interface ListsContext {
  store: JobStore
  batches: Batches
  deadLetters: DeadLetter[]
  suppressed: Map<string, { reason: string; at: number }>
  totals: Totals
  assertOpen(): void
}

export function createDeadLetters({ store, batches, deadLetters, assertOpen }: ListsContext): DeadLetters {
  return {
    async list({ count = 50 } = {}) {
      assertOpen()
      if (!Number.isInteger(count) || count < 1 || count > 10_000) {
        throw new MailstreamError('E_VALIDATION', 'count: must be an integer from 1 to 10000', { field: 'count' })
      }
      return deadLetters.slice(-count).reverse()
    },

    async retry(target) {
      assertOpen()
      const all = typeof target === 'object' && target !== null && (target as { all?: unknown }).all === true
      const id = all ? '' : checkId(target, 'target')
      let moved = 0
      for (const letter of deadLetters.filter((entry) => all || entry.id === id)) {
        deadLetters.splice(deadLetters.indexOf(letter), 1)
        if (!letter.job) continue
        store.requeue(letter.job)
        if (letter.job.batchId !== undefined) batches.reopen(letter.job.batchId)
        moved++
      }
      return moved
    },

    async purge({ before } = {}) {
      assertOpen()
      if (before === undefined) return deadLetters.splice(0).length
      const cutoff = before instanceof Date ? before.getTime() : before
      if (typeof cutoff !== 'number' || !Number.isFinite(cutoff)) {
        throw new MailstreamError('E_VALIDATION', 'before: must be a Date or epoch ms', { field: 'before' })
      }
      const kept = deadLetters.filter((letter) => letter.failedAt >= cutoff)
      const purged = deadLetters.length - kept.length
      deadLetters.splice(0, deadLetters.length, ...kept)
      return purged
    },
  }
}

export function createSuppression({ store, suppressed, assertOpen }: ListsContext): SuppressionList {
  const normalise = (address: unknown): string => addressKey(address, 'address')
  return {
    async add(address, reason = 'manual') {
      assertOpen()
      const normalised = normalise(address)
      checkReason(reason)
      suppressed.set(normalised, { reason, at: store.now() })
    },
    async remove(address) {
      assertOpen()
      return suppressed.delete(normalise(address))
    },
    async has(address) {
      assertOpen()
      return suppressed.has(normalise(address))
    },
    async list() {
      assertOpen()
      const items: SuppressionEntry[] = [...suppressed].map(([address, { reason, at }]) => ({ address, reason, at }))
      return { items, cursor: '0' }
    },
  }
}

/** `stats()` as the queue reports it; nothing is ever pending long, and no consumer group exists. */
export function testStats({ store, deadLetters, suppressed, totals }: ListsContext): QueueStats {
  const now = store.now()
  const records = store.all()
  const stream = (priority: Priority): StreamStats => {
    const queued = records.filter((record) => record.job.priority === priority && record.status === 'queued')
    const pending = records.filter((record) => record.job.priority === priority && record.status === 'active').length
    const oldest = Math.min(...queued.map((record) => record.queuedAt))
    return {
      length: queued.length + pending,
      pending,
      waiting: queued.length,
      lag: queued.length,
      oldestWaitingMs: queued.length > 0 ? Math.max(0, now - oldest) : 0,
      consumers: 0,
    }
  }
  const all = { ...totals, ...Object.fromEntries(EVENT_TOTALS.map((field) => [field, 0])) } as QueueStats['totals']
  return {
    streams: Object.fromEntries(PRIORITIES.map((priority) => [priority, stream(priority)])) as QueueStats['streams'],
    delayed: records.filter((record) => DELAYED.has(record.status)).length,
    dead: deadLetters.length,
    suppressed: suppressed.size,
    totals: all,
    rates: ratesOf(all),
  }
}
