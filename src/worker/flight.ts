import { heldKey } from './fetcher.js'
import type { Hold } from './keeper.js'
import type { Work } from './types.js'

/**
 * The jobs in flight on this worker: the entries it holds (the keeper keeps them, the fetcher
 * never takes them again), the ones sending (each a busy slot), and how many finished since the
 * last `drained` event.
 */
export function createFlight(concurrency: number) {
  const held = new Map<string, Hold>()
  const sending = new Set<Work>()
  let count = 0
  let sinceDrain = 0

  return {
    held: held as ReadonlyMap<string, Hold>,
    /** Jobs taken in and not yet finished, outcomes waiting to be written included. */
    get count() {
      return count
    },
    /**
     * Room for new work. Outcomes waiting to be written hold no slot, but are capped at three more
     * rounds so that a slow Redis slows fetching down.
     */
    free: () => Math.min(concurrency - sending.size, 4 * concurrency - count),
    sending: () => sending.size,
    /** Takes work in; undefined when its entry is in flight here already (that copy finishes it). */
    take(work: Work): string | undefined {
      const { streamIndex, entryId } = work.delivery
      const key = heldKey(streamIndex, entryId)
      if (held.has(key)) return undefined
      count++
      sending.add(work)
      held.set(key, { streamIndex, entryId, keptAt: Date.now() })
      return key
    },
    /** Frees the slot of work whose send is over; true when it held one. */
    releaseSlot: (work: Work): boolean => sending.delete(work),
    /** The work is done here, whatever became of it. */
    finish(work: Work, key: string): void {
      count--
      sending.delete(work)
      held.delete(key)
    },
    /** One more outcome written. */
    processed(): void {
      sinceDrain++
    },
    /** The outcomes written since the last drain, and a fresh count; 0 when none. */
    drain(): number {
      const processed = sinceDrain
      sinceDrain = 0
      return processed
    },
  }
}

/** True when `promise` settles within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const ended = await Promise.race([
    promise.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), ms)
    }),
  ])
  clearTimeout(timer)
  return ended
}

/** True once `predicate` holds, checked every 10 ms; false when `timeoutMs` passed first. */
export function waitUntil(predicate: () => boolean, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const deadline = Date.now() + timeoutMs
    const check = () => {
      if (predicate()) return resolve(true)
      if (Date.now() >= deadline) return resolve(false)
      setTimeout(check, 10)
    }
    check()
  })
}
