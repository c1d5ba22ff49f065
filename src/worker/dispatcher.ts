import type { Connections } from './connections.js'
import type { Fetcher } from './fetcher.js'
import type { Pacing } from './pacing.js'
import type { Work } from './types.js'
import { failureBackoffMs, wakeable } from './wake.js'

export interface Slots {
  /** Jobs this worker may take now. */
  free(): number
  /** Sends in progress. */
  sending(): number
}

/**
 * The fetch loop: takes as many jobs as there are free slots (and rate-limit units), hands each
 * to `start`, and waits on Redis when there is nothing to do.
 */
export function createDispatcher(options: {
  connections: Connections
  fetcher: Fetcher
  pacing: Pacing | undefined
  slots: Slots
  concurrency: number
  blockMs: number
  running(): boolean
  paused(): boolean
  start(work: Work): void
  /** Nothing waiting in Redis: the worker may be drained. */
  onIdle(): void
  onError(error: unknown, what: string, failures: number): void
}) {
  const { connections, fetcher, pacing, slots } = options
  const wake = wakeable()
  const minBatch = Math.max(1, Math.floor(options.concurrency / 2))
  let batchWaitSince = 0
  let idle = false

  /** How many jobs to fetch now; 0 after waiting a little when there is no room. */
  async function room(): Promise<number> {
    if (options.paused()) {
      await wake.wait(1000)
      return 0
    }
    let free = slots.free()
    if (free <= 0) {
      await wake.wait(1000)
      return 0
    }
    // With fast sends, wait up to 2 ms for more free slots instead of fetching one job per
    // round trip; with slow sends (a real provider) the wait is small beside a send.
    if (slots.sending() > 0 && free < minBatch) {
      const now = performance.now()
      if (batchWaitSince === 0) batchWaitSince = now
      if (now - batchWaitSince < 2) {
        await wake.wait(2)
        return 0
      }
    }
    batchWaitSince = 0
    if (pacing) {
      // Fetch no more jobs than there are recipients free soon: a job waiting for units would hold
      // its entry, and a high-priority job arriving meanwhile would wait behind it.
      const allowance = await pacing.allowance()
      if (allowance.units <= 0) {
        await wake.wait(Math.min(allowance.waitMs, 1000))
        return 0
      }
      free = Math.min(free, allowance.units)
    }
    return free
  }

  async function round(): Promise<void> {
    const free = await room()
    if (free <= 0) return
    if (!connections.groupsReady) await connections.ensureGroups()
    let work = await fetcher.next(free)
    if (work.length === 0) {
      idle = true
      options.onIdle()
      if (!options.running() || options.paused()) return
      work = await fetcher.wait(free, options.blockMs)
      if (work.length === 0) return
    }
    idle = false
    for (const item of work) options.start(item)
  }

  return {
    async run(): Promise<void> {
      let failures = 0
      while (options.running()) {
        try {
          await round()
          failures = 0
        } catch (error) {
          if (!options.running()) break
          failures++
          options.onError(error, 'fetching jobs failed, retrying', failures)
          await wake.wait(failureBackoffMs(failures))
        }
      }
    },
    /** True after a round that found nothing in Redis, until one that found work. */
    get idle(): boolean {
      return idle
    },
    wake: wake.wake,
  }
}
