import { MailstreamError } from '../errors.js'
import { GROUP, type QueueKeys } from '../keys.js'
import { runScript } from '../lua/index.js'
import type { createMetricsRecorder } from '../metrics.js'
import type { Connections } from './connections.js'
import type { Processed } from './types.js'

interface Pending {
  processed: Processed
  resolve(applied: boolean): void
  reject(error: unknown): void
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Records outcomes in as few script calls as possible: the outcomes that finish together share
 * one write. A write Redis refuses (down, frozen, out of memory) is retried as a write with
 * backoff, never by sending again; the jobs' entries stay held meanwhile.
 */
export function createOutcomes(options: {
  connections: Connections
  keys: QueueKeys
  statusTtlSeconds: number
  metrics: ReturnType<typeof createMetricsRecorder>
  /** Each run of failures is reported once, with how many so far. */
  onError(error: unknown, what: string, failures: number): void
}) {
  const { connections, keys } = options
  const queue: Pending[] = []
  let flushing: Promise<void> | undefined
  let abandoned = false

  /** Writes the outcomes in order, up to 500 per call, until none is left. */
  async function flushLoop(): Promise<void> {
    let failures = 0
    while (queue.length > 0 && !abandoned) {
      const batch = queue.slice(0, 500)
      try {
        const applied = await writeOutcomes(batch.map((item) => item.processed))
        queue.splice(0, batch.length)
        failures = 0
        for (const [index, item] of batch.entries()) item.resolve(applied[index] === true)
      } catch (error) {
        failures++
        options.onError(error, 'recording send results failed, retrying', failures)
        await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)))
      }
    }
    flushing = undefined
  }

  /**
   * Records outcomes with one script call: statuses, acknowledgements, counters, batch progress,
   * and the histogram increments since the last call (lost, never repeated, if that call fails).
   */
  async function writeOutcomes(batch: Processed[]): Promise<boolean[]> {
    const statusKeys: string[] = []
    const batchKeys = new Map<string, number>()
    const args: (string | number)[] = [GROUP, Date.now(), options.statusTtlSeconds, batch.length, 0]
    for (const { work, job, attempts, outcome } of batch) {
      const { delivery } = work
      statusKeys.push(keys.status(delivery.jobId))
      let batchIndex = 0
      if (job?.batchId !== undefined) {
        batchIndex = batchKeys.get(job.batchId) ?? batchKeys.size + 1
        batchKeys.set(job.batchId, batchIndex)
      }
      args.push(outcome.kind, delivery.streamIndex, delivery.entryId, delivery.jobId, attempts, batchIndex)
      // The payload goes back into Redis only when the job lives on (retry) or is kept (dead letter).
      switch (outcome.kind) {
        case 'sent':
          args.push(outcome.messageId)
          break
        case 'suppressed':
          args.push(outcome.reason)
          break
        case 'dead':
          args.push(outcome.error, delivery.payload)
          break
        case 'retry':
        case 'throttle':
          args.push(outcome.dueAt, outcome.error, delivery.payload, delivery.rcpt)
          break
      }
    }
    const batchIds = [...batchKeys.keys()]
    args[4] = batchIds.length
    for (const batchId of batchIds) args.push(batchId, keys.progress(batchId))
    for (const [field, by] of options.metrics.take()) args.push(field, by)
    const scriptKeys = [
      ...keys.streams,
      keys.delayed,
      keys.dead,
      keys.stats,
      keys.metrics,
      ...statusKeys,
      ...batchIds.map((batchId) => keys.batch(batchId)),
    ]
    const applied = await connections.timed(
      runScript<number[]>(connections.redis(), 'finish', scriptKeys, args),
      'recording send results',
    )
    return applied.map((flag) => flag === 1)
  }

  return {
    /**
     * Resolves true once the outcome is recorded, false when another delivery of the same job was
     * recorded first; rejects (E_CLOSED) when the worker stopped before it could be written.
     */
    write(processed: Processed): Promise<boolean> {
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ processed, resolve, reject })
        // Started on the next turn of the event loop, so that the sends finishing now share one write.
        if (!flushing) flushing = new Promise<void>((next) => setImmediate(next)).then(flushLoop)
      })
    },

    /** True when nothing waits to be written. */
    get idle(): boolean {
      return queue.length === 0 && !flushing
    },

    /** A hard stop: what is not written yet stays pending in Redis for another worker. */
    abandon(): void {
      abandoned = true
      for (const item of queue.splice(0)) item.reject(new MailstreamError('E_CLOSED', 'worker stopped'))
    },

    reset(): void {
      abandoned = false
    },
  }
}

export type Outcomes = ReturnType<typeof createOutcomes>
