import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, test } from 'vitest'
import { createEmailQueue, createEmailWorker, type EmailWorker, type MailstreamError } from '../../src/index.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { sendCounts, slowSends, testJob } from '../helpers/queue.js'
import { uniquePrefix, waitUntil } from '../helpers/redis.js'
import { freePort, type RedisServer, startRedisServer } from '../helpers/redis-server.js'

/** Milliseconds `promise` takes to settle. */
async function timeOf(promise: Promise<unknown>): Promise<number> {
  const startedAt = Date.now()
  await promise
  return Date.now() - startedAt
}

const clients: Redis[] = []
const workers: EmailWorker[] = []
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.stop({ timeoutMs: 500 })))
  for (const client of clients.splice(0)) client.disconnect()
})

/** A client as a host would make it: ioredis defaults, errors listened to. */
function hostClient(url: string): Redis {
  const client = new Redis(url)
  client.on('error', () => {})
  clients.push(client)
  return client
}

function worker(redis: Redis | string, errors: MailstreamError[] = [], options = {}) {
  const created = createEmailWorker({
    redis,
    prefix: uniquePrefix('down'),
    transport: createMemoryTransport(),
    from: 'noreply@example.com',
    ...options,
  })
  created.on('error', (error) => errors.push(error))
  workers.push(created)
  return created
}

describe('Redis refusing connections', () => {
  test.each(['a client of the host', 'a URL'])(
    'with %s: start() returns at once, reports through error events, stop() is bounded',
    async (kind) => {
      const url = `redis://127.0.0.1:${await freePort()}`
      const errors: MailstreamError[] = []
      const w = worker(kind === 'a URL' ? url : hostClient(url), errors)
      await new Promise((resolve) => setTimeout(resolve, 100)) // the client has seen the refusal
      expect(await timeOf(w.start())).toBeLessThan(1500)
      await waitUntil(() => errors.length > 0, 8000, 'an error event')
      expect(errors[0]?.code).toMatch(/^E_(REDIS|TIMEOUT)$/)
      expect(await timeOf(w.stop({ timeoutMs: 1000 }))).toBeLessThan(2000)
    },
  )

  test('a long outage is reported once per loop, not once per retry', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    const errors: MailstreamError[] = []
    const w = worker(url, errors, { rateLimit: { perSecond: 10 }, dailyQuota: 1000 })
    await w.start()
    await new Promise((resolve) => setTimeout(resolve, 4000)) // a dozen retries of each loop
    // The fetch loop, the scheduler and the rate limiter each said it once.
    expect(errors.length).toBeGreaterThan(0)
    expect(errors.length).toBeLessThanOrEqual(4)
  })
})

describe('a frozen Redis (SIGSTOP: connections accepted, nothing answered)', () => {
  let server: RedisServer
  afterAll(async () => {
    server?.resume()
    await server?.stop()
    server?.cleanup()
  })

  test('start() returns within commandTimeoutMs and stop() within its timeout', async () => {
    server ??= await startRedisServer()
    server.pause()
    try {
      const errors: MailstreamError[] = []
      const w = worker(server.url, errors, { commandTimeoutMs: 1000 })
      expect(await timeOf(w.start())).toBeLessThan(2500)
      await waitUntil(() => errors.length > 0, 5000, 'an error event')
      expect(await timeOf(w.stop({ timeoutMs: 1000 }))).toBeLessThan(2000)
    } finally {
      server.resume()
    }
  })

  test('frozen mid-drain: stop({ timeoutMs }) returns in time, and nothing is lost once Redis runs again', async () => {
    server ??= await startRedisServer()
    const client = hostClient(server.url)
    const prefix = uniquePrefix('frozen')
    const queue = createEmailQueue({ redis: client, prefix })
    const transport = createMemoryTransport({ from: 'noreply@example.com' })
    slowSends(transport, 200)
    const jobs = await queue.enqueueMany(Array.from({ length: 40 }, (_, i) => testJob({ to: `f${i}@example.com` })))
    const first = createEmailWorker({ redis: client, prefix, transport, concurrency: 10, visibilityTimeoutMs: 1000 })
    first.on('error', () => {})
    await first.start()
    await transport.waitForCount(5, { timeoutMs: 5000 })
    server.pause()
    try {
      expect(await timeOf(first.stop({ timeoutMs: 1000 }))).toBeLessThan(2000)
    } finally {
      server.resume()
    }
    const second = createEmailWorker({ redis: client, prefix, transport, concurrency: 10, visibilityTimeoutMs: 1000 })
    second.on('error', () => {})
    workers.push(second)
    await second.start()
    await waitUntil(() => sendCounts(transport).size === 40, 20_000, 'every job to be sent')
    for (const { id } of jobs) {
      await waitUntil(async () => (await queue.getStatus(id))?.status === 'sent', 5000, `job ${id} to be recorded`)
    }
    await queue.close()
  })
})
