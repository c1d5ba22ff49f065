import { Redis } from 'ioredis'
import { afterAll, describe, expect, test } from 'vitest'
import { createEmailWorker, type TemplateRendererLike } from '../../src/index.js'
import { harness, sendCounts, slowSends, testJob } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** A renderer that takes `ms` per render, so that a job is held longer than the visibility timeout. */
function slowRenderer(ms: number): TemplateRendererLike & { renders: number } {
  const renderer = {
    renders: 0,
    async render() {
      renderer.renders++
      await sleep(ms)
      return { subject: 'Slow', html: '<p>slow</p>', text: 'slow' }
    },
  }
  return renderer
}

describe('a worker never takes back an entry it still holds', () => {
  test('a job held past the visibility timeout (slow render) is sent once by its worker', async () => {
    const { queue, transport, worker, settled } = harness(connect())
    const templates = slowRenderer(2500)
    const { id } = await queue.enqueue(testJob({ subject: undefined, text: undefined, template: 'slow' }))
    await worker({ visibilityTimeoutMs: 1000, sendTimeoutMs: 500, templates }).start()
    expect((await settled(id, 15_000)).status).toBe('sent')
    await sleep(1500) // a re-send would come after the visibility timeout
    expect(sendCounts(transport).get(id)).toBe(1)
    expect(templates.renders).toBe(1)
  })

  test('a second worker does not take over a job the first still works on', async () => {
    const { queue, transport, worker, settled } = harness(connect())
    const templates = slowRenderer(2500)
    const { id } = await queue.enqueue(testJob({ subject: undefined, text: undefined, template: 'slow' }))
    await worker({ visibilityTimeoutMs: 1000, sendTimeoutMs: 500, templates, concurrency: 1 }).start()
    await sleep(100)
    await worker({ visibilityTimeoutMs: 1000, sendTimeoutMs: 500, templates, concurrency: 1 }).start()
    expect((await settled(id, 15_000)).status).toBe('sent')
    await sleep(1500)
    expect(sendCounts(transport).get(id)).toBe(1)
    expect(templates.renders).toBe(1)
  })

  test('a send timeout at or above the visibility timeout is refused (E_CONFIG)', () => {
    const redis = connect()
    const transport = harness(redis).transport
    expect(() => createEmailWorker({ redis, transport, visibilityTimeoutMs: 1000, sendTimeoutMs: 1000 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'sendTimeoutMs' }),
    )
    // Without sendTimeoutMs it follows the visibility timeout down.
    expect(() => createEmailWorker({ redis, transport, visibilityTimeoutMs: 1000 })).not.toThrow()
  })
})

describe('Redis refusing writes for longer than the visibility timeout', () => {
  let server: RedisServer | undefined
  const clients: Redis[] = []
  afterAll(async () => {
    for (const client of clients) client.disconnect()
    await server?.stop()
    server?.cleanup()
  })

  test('two workers, 200 jobs, writes refused near the end of the drain for 3.5 visibility timeouts: each job sent exactly once', async () => {
    server = await startRedisServer()
    const client = new Redis(server.url, { maxRetriesPerRequest: 2 })
    const admin = new Redis(server.url)
    for (const c of [client, admin]) {
      c.on('error', () => {})
      clients.push(c)
    }
    const { queue, transport, worker, settled } = harness(client)
    slowSends(transport, 20)
    const total = 200
    const jobs = await queue.enqueueMany(Array.from({ length: total }, (_, i) => testJob({ to: `r${i}@example.com` })))
    const errors: string[] = []
    const options = { visibilityTimeoutMs: 1000, sendTimeoutMs: 500, concurrency: 10 }
    const workers = [worker(options), worker(options)]
    for (const w of workers) w.on('error', (error) => errors.push(error.message))
    // Writes are refused from the 190th send on: the outcomes of the last sends have to wait, and
    // the workers, with free slots, go on looking for stale entries meanwhile.
    const send = transport.send.bind(transport)
    let calls = 0
    transport.send = async (message, context) => {
      if (++calls === total - 10) await admin.config('SET', 'maxmemory', '1')
      return send(message, context)
    }
    await Promise.all(workers.map((w) => w.start()))
    await transport.waitForCount(total - 10, { timeoutMs: 10_000 })
    await sleep(3500) // three visibility timeouts with nothing written
    expect(errors.some((message) => message.includes('OOM'))).toBe(true)
    await admin.config('SET', 'maxmemory', '0')
    for (const { id } of jobs) expect((await settled(id, 30_000)).status).toBe('sent')
    await sleep(1200)
    const counts = sendCounts(transport)
    expect(counts.size).toBe(total)
    expect([...counts.values()].filter((count) => count > 1)).toEqual([])
  })
})
