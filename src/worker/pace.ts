import type { ChargeStop } from './waits.js'

export interface PaceEvent {
  /** Recipients per second this worker allows itself now. */
  pace: number
  perSecond: number
  reason: 'throttle' | 'recover'
}

/** The `aimd` part of the worker's `rateLimit` option, defaults applied. */
export interface AimdOptions {
  decrease: number
  increase: number
  intervalMs: number
  minPerSecond?: number | undefined
}

/**
 * This worker's own AIMD pace: lowered after a throttle from the transport, raised step by step
 * while none comes. While lowered, the worker keeps a virtual schedule of its own sends, so that it
 * holds no shared units while it waits for its own pace.
 */
export function createPace(perSecond: number, aimd: AimdOptions, onPace: (event: PaceEvent) => void) {
  const increaseBy = aimd.increase * perSecond
  const minPerSecond = Math.min(perSecond, aimd.minPerSecond ?? perSecond / 20)
  /** The pace after the last decrease and when it happened; undefined at full pace. */
  let lowered: { pace: number; at: number } | undefined
  let reportedPace = perSecond
  /** When this worker's next unit may start on its own schedule (epoch ms). */
  let nextAt = 0
  /** Recent charges [epoch ms, units], for the observed rate. */
  const recent: [number, number][] = []

  /** The pace now: raised by one step per interval since the last decrease. Reports changes unless `quiet`. */
  function current(now: number, quiet = false): number {
    if (!lowered) return perSecond
    const steps = Math.floor((now - lowered.at) / aimd.intervalMs)
    const pace = Math.min(perSecond, lowered.pace + steps * increaseBy)
    if (quiet) return pace
    if (pace >= perSecond) lowered = undefined
    if (pace !== reportedPace) {
      reportedPace = pace
      onPace({ pace, perSecond, reason: 'recover' })
    }
    return pace
  }

  function observedPerSecond(now: number): number | undefined {
    while (recent.length > 0 && (recent[0] as [number, number])[0] <= now - 1000) recent.shift()
    const first = recent[0]
    if (!first) return undefined
    const spanMs = Math.max(now - first[0], 1)
    // Too short a span says little about the rate.
    if (spanMs < 250) return undefined
    let units = 0
    for (const [, cost] of recent) units += cost
    return (units * 1000) / Math.min(1000, spanMs)
  }

  return {
    get pace(): number {
      return current(Date.now(), true)
    },

    /** Units this worker's own pace lets start within `lookaheadMs`, and when to ask again if none. */
    room(lookaheadMs: number): { units: number; waitMs: number } {
      const now = Date.now()
      const pace = current(now)
      if (pace >= perSecond) return { units: Number.POSITIVE_INFINITY, waitMs: 0 }
      const start = Math.max(nextAt, now)
      const units = start > now + lookaheadMs ? 0 : Math.floor((now + lookaheadMs - start) * (pace / 1000)) + 1
      return { units, waitMs: units <= 0 ? start - lookaheadMs - now : 0 }
    },

    /**
     * Books `cost` units on this worker's own schedule: the ms to wait before they may start (0 at
     * full pace), or a delay when that wait would be longer than `maxWaitMs` (then nothing is booked).
     */
    book(cost: number, maxWaitMs: number): number | ChargeStop {
      const now = Date.now()
      const pace = current(now)
      if (pace >= perSecond) return 0
      const start = Math.max(nextAt, now)
      if (start - now > maxWaitMs) {
        return { kind: 'delay', retryAfterMs: start - now, reason: `this worker's pace is ${pace.toFixed(2)}/s` }
      }
      nextAt = start + (cost * 1000) / pace
      return start - now
    },

    /** Counts `cost` units that went, for the observed rate. */
    record(cost: number): void {
      const now = Date.now()
      recent.push([now, cost])
      observedPerSecond(now)
    },

    /** The transport reported a throttle: lower the pace. */
    throttled(): void {
      const now = Date.now()
      // Sends in flight when the pace dropped report their throttles too: one decrease per interval.
      if (lowered && now - lowered.at < aimd.intervalMs) return
      const pace = current(now)
      const observed = observedPerSecond(now)
      const base = observed === undefined ? pace : Math.min(pace, observed)
      const decreased = Math.max(minPerSecond, base * aimd.decrease)
      lowered = { pace: decreased, at: now }
      reportedPace = decreased
      onPace({ pace: decreased, perSecond, reason: 'throttle' })
    },
  }
}

export type Pace = ReturnType<typeof createPace>
