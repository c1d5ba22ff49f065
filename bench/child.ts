/**
 * One measurement in its own process, so that its peak RSS is its own. Prints one JSON line.
 * Built by bench/run.ts and run with plain node: node .tmp/bench/child.js <scenario> <system>
 * (REDIS_URL and N in the environment). Every system gets the same jobs and equivalent settings.
 */
import { Redis } from 'ioredis'
import {
  createEmailQueue,
  createEmailWorker,
  createTemplateRenderer,
  type TemplateRenderer,
  type Transport,
} from 'mailstream'
import { createMemoryTransport } from 'mailstream/memory'

// BullMQ is loaded only by its own runs, so that a mailstream process's RSS is mailstream's alone.
const bullmq = () => import('bullmq')

const [scenario, system] = process.argv.slice(2)
const url = process.env.REDIS_URL as string
const N = Number(process.env.N ?? 100_000)
const CHUNK = 5000
const CONCURRENCY = 100
const PREFIX = 'bench'

const CALLERS = 50

/**
 * BullMQ as its docs recommend for production: retries with backoff, and finished jobs removed by
 * count (a few completed kept to look at, more failed). mailstream's equivalents are its defaults:
 * `maxAttempts: 3` with backoff, a status hash per job kept 24 h, dead letters kept until purged.
 */
const BULLMQ_JOB_OPTIONS = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { count: 1000 },
  removeOnFail: { count: 5000 },
} as const

const redis = new Redis(url, { maxRetriesPerRequest: null })
const peak = { rss: 0 }
// memoryUsage.rss(), not memoryUsage(): the latter walks the heap, a cost the measurement would count.
const sampler = setInterval(() => {
  peak.rss = Math.max(peak.rss, process.memoryUsage.rss())
}, 20)

const subject = 'Vality Weekly #12'
const text = 'This week: three stories worth your time, and one to skip.'
const subscriber = (i: number) => ({ email: `reader${i}@example.com`, name: `Reader ${i}` })
/** What a plain newsletter job carries, the same for every system. */
const emailData = (i: number) => ({ type: 'newsletter', to: subscriber(i).email, subject, text })

const issue = {
  title: 'Three small habits that change a year',
  body: '## Hello!\n\nThis week: **small habits** and why they compound.\n\n1. A ten-minute walk\n2. One page a day\n3. A line of thanks before sleep\n\n[Read the whole issue](https://vality.example/issues/12)',
}
let templates: TemplateRenderer | undefined
/** The newsletter scenario's renderer, made on first use (the other scenarios render nothing). */
const renderer = () => {
  templates ??= createTemplateRenderer({
    defaults: { brandName: 'Vality', frontendUrl: 'https://vality.example' },
    unsubscribe: { secret: 'bench-unsubscribe-secret-0123456789' },
  })
  return templates
}

async function usedMemory(): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1] ?? 0)
}

async function redisCpuSeconds(): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? 0)
  return field('used_cpu_user') + field('used_cpu_sys')
}

/**
 * Starts measuring: wall time, this process's CPU (process.cpuUsage) and redis-server's
 * (INFO used_cpu_user + used_cpu_sys). `stop(jobs)` gives jobs/s and CPU µs per job of each.
 */
async function meter() {
  const redisBefore = await redisCpuSeconds()
  const cpuBefore = process.cpuUsage()
  const start = performance.now()
  return async (jobs: number) => {
    const elapsed = seconds(start)
    const cpu = process.cpuUsage(cpuBefore)
    const redisCpu = (await redisCpuSeconds()) - redisBefore
    const perJob = (micros: number) => Math.round((micros / jobs) * 10) / 10
    return {
      jobsPerSec: Math.round(jobs / elapsed),
      seconds: Math.round(elapsed * 100) / 100,
      cpuUsPerJob: perJob(cpu.user + cpu.system),
      redisCpuUsPerJob: perJob(redisCpu * 1e6),
    }
  }
}

function done(result: Record<string, unknown>): never {
  clearInterval(sampler)
  peak.rss = Math.max(peak.rss, process.memoryUsage.rss())
  console.log(JSON.stringify({ scenario, system, n: N, peakRssMb: Math.round(peak.rss / 1048576), ...result }))
  process.exit(0)
}

const seconds = (start: number) => (performance.now() - start) / 1000
const chunks = function* (total: number, size = CHUNK) {
  for (let from = 0; from < total; from += size) yield { from, count: Math.min(size, total - from) }
}
const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)

// ---- writing jobs ----------------------------------------------------------------------------

/** Enqueues N newsletter jobs as each system does it best: a batch, addBulk, pipelined XADD. */
async function write(options: { templated?: boolean } = {}): Promise<void> {
  if (system === 'mailstream') {
    const queue = createEmailQueue({ redis, prefix: PREFIX })
    async function* recipients() {
      for (let i = 0; i < N; i++) yield subscriber(i)
    }
    await queue.enqueueBatch(
      'issue-12',
      recipients(),
      (recipient) => ({ to: recipient.email, data: { name: recipient.name, email: recipient.email } }),
      options.templated
        ? { template: 'newsletter-issue', data: issue, priority: 'normal' }
        : { subject, text, priority: 'normal' },
    )
  } else if (system === 'bullmq') {
    const { Queue } = await bullmq()
    const queue = new Queue('bench', { connection: redis })
    for (const { from, count } of chunks(N)) {
      await queue.addBulk(
        range(from, count).map((i) => ({
          name: 'newsletter',
          data: options.templated ? { to: subscriber(i).email, name: subscriber(i).name } : emailData(i),
          opts: BULLMQ_JOB_OPTIONS,
        })),
      )
    }
    await queue.close()
  } else {
    await redis.xgroup('CREATE', 'bare:send', 'workers', '0', 'MKSTREAM')
    for (const { from, count } of chunks(N)) {
      const pipeline = redis.pipeline()
      for (const i of range(from, count)) {
        const data = options.templated ? { to: subscriber(i).email, name: subscriber(i).name } : emailData(i)
        pipeline.xadd('bare:send', '*', 'job', JSON.stringify(data))
      }
      await pipeline.exec()
    }
  }
}

async function enqueue(): Promise<void> {
  await redis.flushall()
  const before = await usedMemory()
  const stop = await meter()
  await write()
  const measured = await stop(N)
  const bytes = (await usedMemory()) - before
  done({ ...measured, redisBytesPerJob: Math.round(bytes / N) })
}

/**
 * The web-request path: CALLERS concurrent callers, each enqueueing one job per call and waiting
 * for it (a verification code, a welcome email), N jobs in all. p50/p99: one call's latency.
 */
async function single(): Promise<void> {
  await redis.flushall()
  const job = (i: number) => ({ type: 'welcome', to: subscriber(i).email, subject, text })
  let add: (i: number) => Promise<unknown>
  let close = async () => {}
  if (system === 'mailstream') {
    const queue = createEmailQueue({ redis, prefix: PREFIX })
    add = (i) => queue.enqueue(job(i))
    close = () => queue.close()
  } else if (system === 'bullmq') {
    const { Queue } = await bullmq()
    const queue = new Queue('bench', { connection: redis })
    add = (i) => queue.add('welcome', job(i), BULLMQ_JOB_OPTIONS)
    close = () => queue.close()
  } else {
    add = (i) => redis.xadd('bare:send', '*', 'job', JSON.stringify(job(i)))
  }
  const callers = async (from: number, count: number, latencies?: number[]) => {
    let next = from
    await Promise.all(
      Array.from({ length: CALLERS }, async () => {
        while (next < from + count) {
          const i = next++
          const start = performance.now()
          await add(i)
          latencies?.push(performance.now() - start)
        }
      }),
    )
  }
  // Warm-up (not measured): compiled code and loaded scripts, as in a process that has been up a while.
  await callers(N, 2000)
  const latencies: number[] = []
  const stop = await meter()
  await callers(0, N, latencies)
  const measured = await stop(N)
  await close()
  latencies.sort((a, b) => a - b)
  const at = (q: number) => Math.round((latencies[Math.min(N - 1, Math.floor(q * N))] ?? 0) * 100) / 100
  done({ ...measured, p50Ms: at(0.5), p99Ms: at(0.99), callers: CALLERS })
}

/** Fills the queue for a drain, in a process of its own so that the drain's RSS is the worker's. */
async function fill(): Promise<void> {
  await redis.flushall()
  await write({ templated: scenario === 'newsletter-fill' })
  done({})
}

// ---- draining ----------------------------------------------------------------------------------

/** Drains N jobs; `handle` is what a send costs beyond the queue (nothing, or rendering). */
async function drainWith(templated: boolean): Promise<void> {
  let finished = 0
  // A warm process, as a host that calls warmup() at startup has: modules loaded, built-ins compiled.
  if (templated) await renderer().warmup()
  const stop = await meter()
  let started = performance.now()
  /** Ms from the start to the first job done (for a newsletter: how soon an issue's first email goes). */
  let firstMs: number | undefined
  const one = () => {
    firstMs ??= Math.round((performance.now() - started) * 10) / 10
    return ++finished
  }
  if (system === 'mailstream') {
    const memory = createMemoryTransport({ maxMessages: 100 })
    // The first email counts when the transport gets it (its outcome is recorded with others after).
    const transport: Transport = {
      name: memory.name,
      send: (message, context) => {
        firstMs ??= Math.round((performance.now() - started) * 10) / 10
        return memory.send(message, context)
      },
    }
    const worker = createEmailWorker({
      redis,
      prefix: PREFIX,
      transport,
      concurrency: CONCURRENCY,
      from: 'news@vality.example',
      ...(templated && { templates: renderer() }),
    })
    await new Promise<void>((resolve) => {
      worker.on('sent', () => {
        if (++finished === N) resolve()
      })
      // Counted from the worker's start, once its connections and groups are up: from when it takes jobs.
      void worker.start().then(() => {
        if (firstMs === undefined) started = performance.now()
      })
    })
    const measured = await stop(N)
    await worker.stop()
    done({ ...measured, firstMs })
  }
  const render = async (data: { to: string; name: string }) => {
    const rendered = await renderer().render(
      'newsletter-issue',
      { ...issue, ...data, email: data.to },
      { locale: 'en' },
    )
    if (!rendered.html) throw new Error('nothing rendered')
  }
  if (system === 'bullmq') {
    const { Worker } = await bullmq()
    await new Promise<void>((resolve) => {
      const worker = new Worker(
        'bench',
        async (job) => {
          if (templated) await render(job.data)
        },
        { connection: redis.duplicate(), concurrency: CONCURRENCY },
      )
      worker.on('completed', () => {
        if (one() === N) resolve()
      })
    })
    done({ ...(await stop(N)), firstMs })
  }
  // The floor: read 100 at a time, parse (and render), acknowledge and delete, pipelined.
  while (finished < N) {
    const reply = (await redis.xreadgroup('GROUP', 'workers', 'bare', 'COUNT', 100, 'STREAMS', 'bare:send', '>')) as
      | [string, [string, string[]][]][]
      | null
    const entries = reply?.[0]?.[1] ?? []
    const ids: string[] = []
    for (const [id, fields] of entries) {
      const data = JSON.parse(fields[1] as string)
      if (templated) await render(data)
      ids.push(id)
      firstMs ??= Math.round((performance.now() - started) * 10) / 10
    }
    if (ids.length)
      await redis
        .pipeline()
        .xack('bare:send', 'workers', ...ids)
        .xdel('bare:send', ...ids)
        .exec()
    finished += ids.length
  }
  done({ ...(await stop(N)), firstMs })
}

const drain = () => drainWith(false)
const newsletter = () => drainWith(true)

// ---- latency of high-priority jobs behind a rate-limited low backlog ---------------------------

/**
 * A low-priority backlog drains under a 200/s limit while 200 high-priority jobs arrive, one
 * every 20 ms. Latency: from enqueue to the moment the transport (or processor) gets the job.
 */
async function latency(): Promise<void> {
  await redis.flushall()
  const HIGH = 200
  const RATE = 200
  const latencies: number[] = []
  const enqueuedAt = new Map<string, number>()
  if (system === 'mailstream') {
    const queue = createEmailQueue({ redis, prefix: PREFIX })
    await queue.enqueueBatch('backlog', range(0, N).map(subscriber), (recipient) => recipient.email, {
      subject,
      text,
      priority: 'low',
    })
    const transport = createMemoryTransport({ maxMessages: 10 })
    const send = transport.send.bind(transport)
    transport.send = (message, context) => {
      const at = enqueuedAt.get(message.jobId)
      if (at !== undefined) latencies.push(performance.now() - at)
      return send(message, context)
    }
    const worker = createEmailWorker({
      redis,
      prefix: PREFIX,
      transport,
      concurrency: CONCURRENCY,
      from: 'news@vality.example',
      rateLimit: { perSecond: RATE, burst: 1 },
    })
    await worker.start()
    await new Promise((resolve) => setTimeout(resolve, 1000))
    for (let i = 0; i < HIGH; i++) {
      const id = `urgent-${i}`
      enqueuedAt.set(id, performance.now())
      await queue.enqueue({
        id,
        type: 'verification-code',
        to: `urgent${i}@example.com`,
        subject,
        text,
        priority: 'high',
      })
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    while (latencies.length < HIGH) await new Promise((resolve) => setTimeout(resolve, 20))
    await worker.stop({ timeoutMs: 1000 })
  } else if (system === 'bullmq') {
    const { Queue } = await bullmq()
    const queue = new Queue('bench', { connection: redis })
    for (const { from, count } of chunks(N)) {
      await queue.addBulk(
        range(from, count).map((i) => ({
          name: 'newsletter',
          data: emailData(i),
          opts: { ...BULLMQ_JOB_OPTIONS, priority: 10 },
        })),
      )
    }
    const { Worker } = await bullmq()
    const worker = new Worker(
      'bench',
      async (job) => {
        const at = enqueuedAt.get(job.id as string)
        if (at !== undefined) latencies.push(performance.now() - at)
      },
      { connection: redis.duplicate(), concurrency: CONCURRENCY, limiter: { max: RATE, duration: 1000 } },
    )
    await new Promise((resolve) => setTimeout(resolve, 1000))
    for (let i = 0; i < HIGH; i++) {
      const id = `urgent-${i}`
      enqueuedAt.set(id, performance.now())
      await queue.add('verification-code', emailData(i), { ...BULLMQ_JOB_OPTIONS, jobId: id, priority: 1 })
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    while (latencies.length < HIGH) await new Promise((resolve) => setTimeout(resolve, 20))
    await worker.close(true)
    await queue.close()
  } else {
    done({ note: 'a bare stream has no priorities' })
  }
  latencies.sort((a, b) => a - b)
  const at = (q: number) =>
    Math.round((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0) * 10) / 10
  done({ p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) })
}

// ---- RSS over a long drain ---------------------------------------------------------------------

/** Drains N jobs (1M in the bench) and samples RSS every second: it should stay flat. */
async function rss(): Promise<void> {
  const transport = createMemoryTransport({ maxMessages: 10 })
  const worker = createEmailWorker({
    redis,
    prefix: PREFIX,
    transport,
    concurrency: CONCURRENCY,
    from: 'news@vality.example',
  })
  let finished = 0
  const samples: { sent: number; rssMb: number }[] = []
  const every = setInterval(() => {
    samples.push({ sent: finished, rssMb: Math.round(process.memoryUsage.rss() / 1048576) })
  }, 1000)
  const start = performance.now()
  await new Promise<void>((resolve) => {
    worker.on('sent', () => {
      if (++finished === N) resolve()
    })
    void worker.start()
  })
  clearInterval(every)
  const elapsed = seconds(start)
  await worker.stop()
  // Trend: least-squares slope of RSS against jobs sent, after the first 10% (warm-up).
  const steady = samples.filter((sample) => sample.sent >= N / 10)
  const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / Math.max(1, values.length)
  const mx = mean(steady.map((s) => s.sent))
  const my = mean(steady.map((s) => s.rssMb))
  const slope =
    steady.reduce((sum, s) => sum + (s.sent - mx) * (s.rssMb - my), 0) /
    Math.max(
      1,
      steady.reduce((sum, s) => sum + (s.sent - mx) ** 2, 0),
    )
  done({
    jobsPerSec: Math.round(N / elapsed),
    seconds: elapsed,
    rssMbPer100kJobs: Math.round(slope * 100_000 * 10) / 10,
    rssFirstMb: steady[0]?.rssMb,
    rssLastMb: steady.at(-1)?.rssMb,
    samples: samples.map((s) => [s.sent, s.rssMb]),
  })
}

// ---- the outbox: commit to Redis ---------------------------------------------------------------

/**
 * 50 callers, each committing transactions that insert one job into the outbox (mailstream/pg),
 * while two relays (LISTEN/NOTIFY) move them to Redis. Latency: from the caller's COMMIT reply to
 * the job's status hash (written by the relay), over a sample of the jobs. `bare` is the unsafe
 * way for comparison: the row committed, then `enqueue()` after COMMIT (its one relay idles).
 */
async function outbox(): Promise<void> {
  await redis.flushall()
  const { default: pg } = await import('pg')
  const { createOutbox, createOutboxRelay } = await import('mailstream/pg')
  const pool = new pg.Pool({
    connectionString: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
    max: CALLERS + 4,
  })
  const table = 'bench_outbox.mailstream_outbox'
  await pool.query('DROP SCHEMA IF EXISTS bench_outbox CASCADE; CREATE SCHEMA bench_outbox')
  const queue = createEmailQueue({ redis, prefix: PREFIX })
  const box = createOutbox({ queue, table })
  await box.migrate(pool)
  const relays = (system === 'mailstream' ? [1, 2] : [1]).map(() =>
    createOutboxRelay({ queue, pool, table, batchSize: 200 }),
  )
  for (const relay of relays) relay.start()
  await pool.query('CREATE TABLE bench_outbox.plain (id bigserial PRIMARY KEY, payload text NOT NULL)')
  const committed = new Map<string, number>()
  const job = (i: number) => ({ type: 'welcome', to: subscriber(i).email, subject, text })
  /** mailstream: the job in the transaction. bare: a row in the transaction, then enqueue() after COMMIT. */
  const transaction = async (client: import('pg').PoolClient, i: number) => {
    await client.query('BEGIN')
    if (system === 'mailstream') {
      const { id } = await box.enqueue(client, job(i))
      await client.query('COMMIT')
      committed.set(id, Date.now())
      return
    }
    await client.query('INSERT INTO bench_outbox.plain (payload) VALUES ($1)', [JSON.stringify(job(i))])
    await client.query('COMMIT')
    const at = Date.now()
    const { id } = await queue.enqueue(job(i))
    committed.set(id, at)
  }
  const callers = async (from: number, count: number) => {
    let next = from
    await Promise.all(
      Array.from({ length: CALLERS }, async () => {
        const client = await pool.connect()
        while (next < from + count) await transaction(client, next++)
        client.release()
      }),
    )
  }
  const drained = async () => {
    for (;;) {
      if ((await relays[0]?.stats())?.waiting === 0) return
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }
  await callers(N, 1000) // warm-up, not measured
  await drained()
  committed.clear()
  const stop = await meter()
  await callers(0, N)
  await drained()
  const measured = await stop(N)
  const sample = [...committed].filter((_, index) => index % Math.max(1, Math.floor(N / 2000)) === 0)
  const latencies: number[] = []
  for (const [id, at] of sample) {
    const state = await queue.getStatus(id)
    if (state) latencies.push(Math.max(0, state.createdAt - at))
  }
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  await Promise.all(relays.map((relay) => relay.stop()))
  await queue.close()
  await pool.query('DROP SCHEMA IF EXISTS bench_outbox CASCADE')
  await pool.end()
  done({ ...measured, p50Ms: at(0.5), p99Ms: at(0.99), callers: CALLERS, relays: relays.length })
}

const scenarios: Record<string, () => Promise<void>> = {
  outbox,
  enqueue,
  single,
  fill,
  'newsletter-fill': fill,
  drain,
  newsletter,
  latency,
  rss,
}
const run = scenarios[scenario as string]
if (!run) {
  console.error(`unknown scenario ${scenario}`)
  process.exit(2)
}
await run()
