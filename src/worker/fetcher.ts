import { GROUP, type QueueKeys } from '../keys.js'
import { activate } from '../lua/activate.js'
import { parseEntryFields } from '../lua/entry.js'
import { fetch } from '../lua/fetch.js'
import type { Connections } from './connections.js'
import { createRecovery } from './recovery.js'
import type { Delivery, Work } from './types.js'

/** Entry ids are unique per stream only: two priorities may hand out the same id. */
export const heldKey = (streamIndex: number, entryId: string) => `${streamIndex} ${entryId}`

export interface FetcherOptions {
  connections: Connections
  keys: QueueKeys
  consumer: string
  visibilityTimeoutMs: number
  maxDeliveries: number
  /** The entries this worker holds, by `heldKey`: never fetched, reclaimed or recovered again. */
  held: ReadonlyMap<string, unknown>
  /** An entry without a job was dead-lettered by the activate script. */
  onPoison(jobId: string): void
}

/**
 * Where work comes from: entries this consumer owns but lost track of, entries other consumers
 * left pending past the visibility timeout, and new entries in strict priority order. Never
 * hands out an entry this worker holds.
 */
export function createFetcher(options: FetcherOptions) {
  const { connections, keys, consumer, held } = options
  const { redis, timed } = connections
  const recovery = createRecovery({
    connections,
    keys,
    consumer,
    visibilityTimeoutMs: options.visibilityTimeoutMs,
    isHeld: (streamIndex, entryId) => held.has(heldKey(streamIndex, entryId)),
  })
  /**
   * Set after a failed fetch (Redis may have delivered entries whose reply never arrived) and at
   * start (a consumer name given again may own entries from an earlier life).
   */
  let lostReplies = true

  /**
   * New entries in strict priority order. Those with a job come back ready to send (their
   * recipients already checked against the suppression list); the rest go through `activate`.
   */
  async function fetchStrict(count: number): Promise<{ ready: Work[]; check: Delivery[] }> {
    const entries = await timed(fetch(redis(), keys, { group: GROUP, consumer, count }), 'fetching jobs')
    const ready: Work[] = []
    const check: Delivery[] = []
    // Objects built field by field: rest and spread copies cost more, once per job.
    for (const entry of entries) {
      const { jobId, payload } = entry
      const delivery: Delivery = {
        streamIndex: entry.streamIndex,
        entryId: entry.entryId,
        jobId,
        payload,
        rcpt: entry.rcpt,
        deliveries: 1,
      }
      if (jobId === '' || payload === '') check.push(delivery)
      else
        ready.push({
          delivery,
          verdict: 'send',
          attempts: entry.attempts,
          suppressed: entry.suppressed,
          throttles: entry.throttles,
        })
    }
    return { ready, check }
  }

  /** Checks entries delivered again (or read by a blocking read) against their job's status. */
  async function checkAll(deliveries: Delivery[]): Promise<Work[]> {
    if (deliveries.length === 0) return []
    const call = { group: GROUP, now: Date.now(), maxDeliveries: options.maxDeliveries, entries: deliveries }
    const verdicts = await timed(activate(redis(), keys, call), 'checking fetched jobs')
    const work: Work[] = []
    verdicts.forEach(({ verdict, attempts, suppressed, throttles }, index) => {
      const delivery = deliveries[index] as Delivery
      if (verdict === 'send' || verdict === 'over') {
        work.push({ delivery, verdict, attempts, suppressed, throttles })
      } else if (verdict === 'poison') {
        options.onPoison(delivery.jobId)
      }
    })
    return work
  }

  return {
    /** Up to `count` jobs to work on now: lost ones first, then stale ones, then new ones. */
    async next(count: number): Promise<Work[]> {
      try {
        const check: Delivery[] = []
        if (lostReplies) {
          check.push(...(await recovery.own(count)))
          lostReplies = check.length === count // more may be left
        }
        if (check.length < count) check.push(...(await recovery.stale(count - check.length)))
        const work: Work[] = []
        if (check.length < count) {
          const fetched = await fetchStrict(count - check.length)
          work.push(...fetched.ready)
          check.push(...fetched.check)
        }
        return [...(await checkAll(check)), ...work]
      } catch (error) {
        lostReplies = true
        throw error
      }
    },

    /** Waits on Redis for new entries when there were none, at most `blockMs` (and no later than the next reclaim). */
    async wait(count: number, blockMs: number): Promise<Work[]> {
      try {
        const reply = await connections.readBlocking(count, Math.max(10, Math.min(blockMs, recovery.untilReclaim())))
        if (!reply) return []
        const out: Delivery[] = []
        for (const [stream, entries] of reply) {
          const streamIndex = keys.streams.indexOf(stream) + 1
          for (const [entryId, fields] of entries)
            out.push({ streamIndex, entryId, ...parseEntryFields(fields), deliveries: 1 })
        }
        // Strict priority within what arrived together.
        return await checkAll(out.sort((a, b) => a.streamIndex - b.streamIndex))
      } catch (error) {
        lostReplies = true
        throw error
      }
    },

    /** An entry of this worker's is pending without being held (a job failed unexpectedly): take it back. */
    recoverLost(): void {
      lostReplies = true
    },
  }
}

export type Fetcher = ReturnType<typeof createFetcher>
