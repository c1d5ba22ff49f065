import { MailstreamError } from '../errors.js'
import { GROUP, type QueueKeys } from '../keys.js'
import { type FinishedJob, finish } from '../lua/finish.js'
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

  /** One call of the finish script for the batch (histogram increments ride along; lost, never repeated, if it fails). */
  function writeOutcomes(batch: Processed[]): Promise<boolean[]> {
    const jobs = batch.map(
      ({ work: { delivery }, job, attempts, throttles, outcome, payload }): FinishedJob => ({
        streamIndex: delivery.streamIndex,
        entryId: delivery.entryId,
        jobId: delivery.jobId,
        payload: payload ?? delivery.payload,
        rcpt: delivery.rcpt,
        attempts,
        throttles: throttles ?? 0,
        batchId: job?.batchId,
        outcome,
      }),
    )
    const call = {
      group: GROUP,
      now: Date.now(),
      statusTtlSeconds: options.statusTtlSeconds,
      jobs,
      metrics: options.metrics.take(),
    }
    return connections.timed(finish(connections.redis(), keys, call), 'recording send results')
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
