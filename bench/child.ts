/**
 * One measurement in its own process, so that its peak RSS is its own. Prints one JSON line.
 * Built by bench/run.ts and run with plain node: node .tmp/bench/child.js <scenario> <system>
 * (REDIS_URL and N in the environment).
 */
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { createEmailQueue, createEmailWorker } from 'mailstream'
import { createMemoryTransport } from 'mailstream/memory'

const [scenario, system] = process.argv.slice(2)
const url = process.env.REDIS_URL as string
const N = Number(process.env.N ?? 100_000)
const CHUNK = 5000
const CONCURRENCY = 100

const redis = new Redis(url, { maxRetriesPerRequest: null })
const peak = { rss: 0 }
const sampler = setInterval(() => {
  peak.rss = Math.max(peak.rss, process.memoryUsage().rss)
}, 20)

/** The same email for every system: what a newsletter job carries. */
function emailData(i: number) {
  return {
    type: 'newsletter',
    to: `reader${i}@example.com`,
    subject: 'Vality Weekly #12',
    text: 'This week: three stories worth your time, and one to skip.',
  }
}

async function usedMemory(): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0)
}

function done(result: Record<string, unknown>): never {
  clearInterval(sampler)
  peak.rss = Math.max(peak.rss, process.memoryUsage().rss)
  console.log(JSON.stringify({ scenario, system, n: N, peakRssMb: Math.round(peak.rss / 1048576), ...result }))
  process.exit(0)
}

const seconds = (start: number) => (performance.now() - start) / 1000

// ---- enqueue -----------------------------------------------------------------------------

async function enqueue(): Promise<void> {
  await redis.flushall()
  const before = await usedMemory()
  const start = performance.now()
  if (system === 'mailstream') {
    const queue = createEmailQueue({ redis, prefix: 'bench' })
    for (let from = 0; from < N; from += CHUNK) {
      await queue.enqueueMany(Array.from({ length: Math.min(CHUNK, N - from) }, (_, i) => emailData(from + i)))
    }
  } else if (system === 'bullmq') {
    const queue = new Queue('bench', { connection: redis })
    for (let from = 0; from < N; from += CHUNK) {
      await queue.addBulk(
        Array.from({ length: Math.min(CHUNK, N - from) }, (_, i) => ({
          name: 'newsletter',
          data: emailData(from + i),
          opts: { attempts: 3, removeOnComplete: true },
        })),
      )
    }
  } else {
    for (let from = 0; from < N; from += CHUNK) {
      const pipeline = redis.pipeline()
      for (let i = from; i < Math.min(N, from + CHUNK); i++) {
        pipeline.xadd('bare:send', '*', 'job', JSON.stringify(emailData(i)))
      }
      await pipeline.exec()
    }
  }
  const elapsed = seconds(start)
  const bytes = (await usedMemory()) - before
  done({ jobsPerSec: Math.round(N / elapsed), seconds: elapsed, redisBytesPerJob: Math.round(bytes / N) })
}

// ---- drain -------------------------------------------------------------------------------

/** Fills the queue for `drain`, in a process of its own so that the drain's RSS is the worker's. */
async function fill(): Promise<void> {
  await redis.flushall()
  if (system === 'mailstream') {
    const queue = createEmailQueue({ redis, prefix: 'bench' })
    for (let from = 0; from < N; from += CHUNK) {
      await queue.enqueueMany(Array.from({ length: Math.min(CHUNK, N - from) }, (_, i) => emailData(from + i)))
    }
  } else if (system === 'bullmq') {
    const queue = new Queue('bench', { connection: redis })
    for (let from = 0; from < N; from += CHUNK) {
      await queue.addBulk(
        Array.from({ length: Math.min(CHUNK, N - from) }, (_, i) => ({
          name: 'newsletter',
          data: emailData(from + i),
          opts: { attempts: 3, removeOnComplete: true },
        })),
      )
    }
    await queue.close()
  } else {
    await redis.xgroup('CREATE', 'bare:send', 'workers', '0', 'MKSTREAM')
    for (let from = 0; from < N; from += CHUNK) {
      const pipeline = redis.pipeline()
      for (let i = from; i < Math.min(N, from + CHUNK); i++) {
        pipeline.xadd('bare:send', '*', 'job', JSON.stringify(emailData(i)))
      }
      await pipeline.exec()
    }
  }
  done({})
}

async function drain(): Promise<void> {
  let finished = 0
  const start = performance.now()
  if (system === 'mailstream') {
    const transport = createMemoryTransport({ maxMessages: 100 })
    const worker = createEmailWorker({
      redis,
      prefix: 'bench',
      transport,
      concurrency: CONCURRENCY,
      from: 'news@vality.kr',
    })
    await new Promise<void>((resolve) => {
      worker.on('sent', () => {
        if (++finished === N) resolve()
      })
      void worker.start()
    })
    const elapsed = seconds(start)
    await worker.stop()
    done({ jobsPerSec: Math.round(N / elapsed), seconds: elapsed })
  } else if (system === 'bullmq') {
    await new Promise<void>((resolve) => {
      const worker = new Worker('bench', async () => {}, { connection: redis.duplicate(), concurrency: CONCURRENCY })
      worker.on('completed', () => {
        if (++finished === N) resolve()
      })
    })
    done({ jobsPerSec: Math.round(N / seconds(start)), seconds: seconds(start) })
  } else {
    // The floor: read 100 at a time, "send" (parse), acknowledge and delete, pipelined.
    while (finished < N) {
      const reply = (await redis.xreadgroup('GROUP', 'workers', 'bare', 'COUNT', 100, 'STREAMS', 'bare:send', '>')) as
        | [string, [string, string[]][]][]
        | null
      const entries = reply?.[0]?.[1] ?? []
      const ids = entries.map(([id, fields]) => {
        JSON.parse(fields[1] as string)
        return id
      })
      if (ids.length)
        await redis
          .pipeline()
          .xack('bare:send', 'workers', ...ids)
          .xdel('bare:send', ...ids)
          .exec()
      finished += ids.length
    }
    done({ jobsPerSec: Math.round(N / seconds(start)), seconds: seconds(start) })
  }
}

const scenarios: Record<string, () => Promise<void>> = { enqueue, fill, drain }
const run = scenarios[scenario as string]
if (!run) {
  console.error(`unknown scenario ${scenario}`)
  process.exit(2)
}
await run()
