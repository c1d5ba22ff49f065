import type { Redis } from 'ioredis'
import { afterEach } from 'vitest'
import {
  createEmailQueue,
  createEmailWorker,
  type EmailJobInput,
  type EmailQueue,
  type EmailWorker,
  type EmailWorkerOptions,
  type JobState,
} from '../../src/index.js'
import { createMemoryTransport, type MemoryTransport } from '../../src/transports/memory.js'
import { uniquePrefix, waitUntil } from './redis.js'

const FINAL = ['sent', 'dead', 'cancelled', 'suppressed']

const running: EmailWorker[] = []
const queues: EmailQueue[] = []
afterEach(async () => {
  await Promise.all(running.splice(0).map((worker) => worker.stop({ timeoutMs: 2000 })))
  await Promise.all(queues.splice(0).map((queue) => queue.close()))
})

export interface Harness {
  prefix: string
  queue: EmailQueue
  transport: MemoryTransport
  worker(options?: Partial<EmailWorkerOptions>): EmailWorker
  /** Resolves with the job's status once it is final (sent, dead, cancelled, suppressed). */
  settled(id: string, timeoutMs?: number): Promise<JobState>
}

/** A queue on a fresh prefix, a memory transport, and workers that stop after each test. */
export function harness(redis: Redis, prefix = uniquePrefix('w')): Harness {
  const queue = createEmailQueue({ redis, prefix })
  queues.push(queue)
  const transport = createMemoryTransport()
  return {
    prefix,
    queue,
    transport,
    async settled(id, timeoutMs = 10_000) {
      let state: JobState | null = null
      await waitUntil(
        async () => {
          state = await queue.getStatus(id)
          return state !== null && FINAL.includes(state.status)
        },
        timeoutMs,
        `job ${id} to finish`,
      )
      return state as unknown as JobState
    },
    worker(options = {}) {
      const worker = createEmailWorker({
        redis,
        prefix,
        transport,
        from: 'Mailstream <noreply@example.com>',
        backoff: { baseMs: 20, maxMs: 2000 },
        throttleDelayMs: 20,
        schedulerIntervalMs: 100,
        ...options,
      })
      running.push(worker)
      return worker
    },
  }
}

/** How many times each job id was sent. */
export function sendCounts(transport: MemoryTransport): Map<string, number> {
  const counts = new Map<string, number>()
  for (const { message } of transport.messages) counts.set(message.jobId, (counts.get(message.jobId) ?? 0) + 1)
  return counts
}

/** A small valid job; fields given override the defaults. */
export const testJob = (overrides: Partial<EmailJobInput> = {}): EmailJobInput => ({
  type: 'welcome',
  to: 'reader@example.com',
  subject: 'Welcome',
  text: 'Hello',
  ...overrides,
})

/** Makes every send of a memory transport take `ms` longer, so that a drain lasts long enough to disturb. */
export function slowSends(transport: MemoryTransport, ms: number): void {
  const send = transport.send.bind(transport)
  transport.send = async (message, context) => {
    await new Promise((resolve) => setTimeout(resolve, ms))
    return send(message, context)
  }
}
