// The test queue's batches: counters, state and progress, as the batch scripts keep them in Redis.
import type { BatchCounters } from '../lua/seal-batch.js'
import { type BatchProgress, type BatchState, type ProgressSubscription, toProgress } from '../queue/batches.js'
import type { BatchStats } from '../queue/stats.js'
import { ratesOf } from '../queue/stats.js'

/** What `P:batch:<id>` holds. */
export interface BatchRecord {
  batchId: string
  total: number
  sent: number
  failed: number
  suppressed: number
  cancelled: number
  sealed: boolean
  /** The shared data as JSON, as `enqueueBatch` stores it once; undefined for none. */
  sharedJson: string | undefined
  shared: Record<string, unknown> | undefined
  createdAt?: number
  finishedAt?: number
  cancelledAt?: number
  /** The last progress published (lib/batch.lua). */
  progressCompleted: number
  progressPercent: number
  progressAt: number
}

export type BatchCounter = 'sent' | 'failed' | 'suppressed' | 'cancelled'

const countersOf = (batch: BatchRecord): BatchCounters => ({
  total: batch.total,
  sent: batch.sent,
  failed: batch.failed,
  suppressed: batch.suppressed,
  cancelled: batch.cancelled,
  finished: batch.finishedAt !== undefined,
})

/** `getBatch`: the batch's counters, progress and where it stands. */
function batchState(batch: BatchRecord): BatchState {
  const state: BatchState = {
    ...toProgress(batch.batchId, countersOf(batch)),
    state:
      batch.cancelledAt !== undefined
        ? 'cancelled'
        : batch.finishedAt !== undefined
          ? 'finished'
          : batch.sealed
            ? 'sending'
            : 'enqueueing',
  }
  for (const field of ['createdAt', 'finishedAt', 'cancelledAt'] as const) {
    const value = batch[field]
    if (value !== undefined) state[field] = value
  }
  return state
}

/** `batchStats`: no SES events reach a test queue, so the delivery counters stay at zero. */
function batchStats(batch: BatchRecord): BatchStats {
  const totals = {
    sent: batch.sent,
    failed: batch.failed,
    suppressed: batch.suppressed,
    delivered: 0,
    bounced: 0,
    bouncedPermanent: 0,
    complained: 0,
    opened: 0,
    clicked: 0,
    rejected: 0,
    renderingFailed: 0,
    deliveryDelayed: 0,
  }
  return {
    batchId: batch.batchId,
    total: batch.total,
    cancelled: batch.cancelled,
    finished: batch.finishedAt !== undefined,
    totals,
    rates: ratesOf(totals),
  }
}

/** Batches and their progress listeners; `now` is the test queue's clock. */
export function createBatches(now: () => number) {
  const batches = new Map<string, BatchRecord>()
  const listeners = new Map<string, Set<(progress: BatchProgress) => void>>()

  function publish(batch: BatchRecord, counters: BatchCounters): void {
    const progress = toProgress(batch.batchId, counters)
    for (const listener of [...(listeners.get(batch.batchId) ?? [])]) {
      try {
        listener(progress)
      } catch {
        // A listener's error is its own: the send that moved the batch stands.
      }
    }
  }

  /** After a change to the counters: publishes as lib/batch.lua does, and finishes a done batch once. */
  function progress(batch: BatchRecord): void {
    if (batch.finishedAt !== undefined) return
    const counters = countersOf(batch)
    const completed = batch.sent + batch.failed + batch.suppressed + batch.cancelled
    if (batch.sealed && completed >= batch.total) {
      batch.finishedAt = now()
      publish(batch, { ...counters, finished: true })
      return
    }
    const percentage = batch.total > 0 ? Math.min(100, Math.floor((completed * 10_000) / batch.total) / 100) : 0
    if (
      completed > batch.progressCompleted &&
      (Math.floor(percentage) > batch.progressPercent || now() - batch.progressAt >= 250)
    ) {
      batch.progressCompleted = completed
      batch.progressPercent = Math.floor(percentage)
      batch.progressAt = now()
      publish(batch, counters)
    }
  }

  return {
    get: (batchId: string) => batches.get(batchId),
    /** The batch's record, made on its first job (or its first `enqueueBatch`). */
    ensure(batchId: string): BatchRecord {
      let batch = batches.get(batchId)
      if (!batch) {
        batch = {
          batchId,
          total: 0,
          sent: 0,
          failed: 0,
          suppressed: 0,
          cancelled: 0,
          sealed: false,
          sharedJson: undefined,
          shared: undefined,
          progressCompleted: -1,
          progressPercent: -1,
          progressAt: 0,
        }
        batches.set(batchId, batch)
      }
      return batch
    },
    /** Counts one finished job of a batch and publishes its progress. */
    count(batchId: string, counter: BatchCounter, by = 1): void {
      const batch = batches.get(batchId)
      if (!batch) return
      batch[counter] += by
      progress(batch)
    },
    seal(batch: BatchRecord): void {
      batch.sealed = true
      progress(batch)
    },
    /** A dead job of the batch sent again: the batch is not done any more. */
    reopen(batchId: string): void {
      const batch = batches.get(batchId)
      if (!batch) return
      batch.failed--
      delete batch.finishedAt
    },
    state(batchId: string): BatchState | null {
      const batch = batches.get(batchId)
      return batch ? batchState(batch) : null
    },
    stats(batchId: string): BatchStats | null {
      const batch = batches.get(batchId)
      return batch ? batchStats(batch) : null
    },
    on(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription {
      let set = listeners.get(batchId)
      if (!set) {
        set = new Set()
        listeners.set(batchId, set)
      }
      const current = set
      const wrapped = (progress: BatchProgress) => listener(progress)
      current.add(wrapped)
      const unsubscribe = () => {
        current.delete(wrapped)
      }
      return Object.assign(unsubscribe, { ready: Promise.resolve() })
    },
  }
}

export type Batches = ReturnType<typeof createBatches>
