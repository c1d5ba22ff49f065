import { describe, expect, test } from 'vitest'
import type { DeadEvent, MailstreamError } from '../../src/index.js'
import { harness, sendCounts, slowSends, testJob } from '../helpers/queue.js'
import { connect, persistentRedis, uniquePrefix, waitUntil } from '../helpers/redis.js'

const redis = connect()

const job = testJob

describe('reclaiming', () => {
  test('a worker stopped mid-run leaves its entries pending; a second worker reclaims and sends them', async () => {
    const prefix = uniquePrefix('r')
    const first = harness(redis, prefix)
    // The first worker's transport sends 10 messages, then hangs on every further send.
    const send = first.transport.send.bind(first.transport)
    first.transport.send = (message, context) =>
      first.transport.messages.length >= 10 ? new Promise(() => {}) : send(message, context)
    const enqueued = await first.queue.enqueueMany(
      Array.from({ length: 30 }, (_, i) => job({ to: `r${i}@example.com` })),
    )
    const workerA = first.worker({ concurrency: 5, visibilityTimeoutMs: 400 })
    await workerA.start()
    await waitUntil(() => first.transport.messages.length === 10 && workerA.inFlight === 5)
    await workerA.stop({ timeoutMs: 50 })
    const [pendingCount] = (await redis.xpending(`${prefix}:send:normal`, 'workers')) as [number]
    expect(pendingCount).toBe(5)

    const second = harness(redis, prefix)
    const workerB = second.worker({ concurrency: 5, visibilityTimeoutMs: 400 })
    await workerB.start()
    await second.transport.waitForCount(20, { timeoutMs: 10_000 })
    await Promise.all(enqueued.map(({ id }) => second.settled(id)))

    const counts = sendCounts(first.transport)
    for (const [id, count] of sendCounts(second.transport)) counts.set(id, (counts.get(id) ?? 0) + count)
    expect(counts.size).toBe(30)
    expect([...counts.values()].every((count) => count === 1)).toBe(true)
    const [pendingAfter] = (await redis.xpending(`${prefix}:send:normal`, 'workers')) as [number]
    expect(pendingAfter).toBe(0)
  })

  test('a pending entry whose job is already marked sent is acknowledged without sending', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const { id } = await queue.enqueue(job())
    // A worker that crashed after its send was recorded, before its entry was acknowledged.
    await redis
      .xreadgroup('GROUP', 'workers', 'crashed', 'COUNT', 1, 'STREAMS', `${prefix}:send:normal`, '>')
      .catch(async () => {
        await redis.xgroup('CREATE', `${prefix}:send:normal`, 'workers', '0', 'MKSTREAM')
        await redis.xreadgroup('GROUP', 'workers', 'crashed', 'COUNT', 1, 'STREAMS', `${prefix}:send:normal`, '>')
      })
    await redis.hset(`${prefix}:status:${id}`, 'status', 'sent', 'messageId', 'earlier')
    const marker = await queue.enqueue(job({ to: 'marker@example.com', delayMs: 300 }))
    await worker({ visibilityTimeoutMs: 100 }).start()
    await transport.waitFor({ jobId: marker.id })
    await waitUntil(async () => ((await redis.xpending(`${prefix}:send:normal`, 'workers')) as [number])[0] === 0)
    expect(transport.find({ jobId: id })).toBeUndefined()
    expect(await queue.getStatus(id)).toMatchObject({ status: 'sent', messageId: 'earlier' })
  })
})

describe('poison entries are dead-lettered without stopping the worker', () => {
  test('entries without a job, with a missing job, or with an unreadable payload', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const w = worker()
    const dead: DeadEvent[] = []
    w.on('dead', (event) => dead.push(event))
    await w.start()
    await redis.xadd(`${prefix}:send:normal`, '*', 'garbage', '1')
    await redis.xadd(`${prefix}:send:high`, '*', 'id', 'no-such-job')
    const unreadable = await queue.enqueue(job({ delayMs: 100 }))
    await redis.hset(`${prefix}:status:${unreadable.id}`, 'job', '{not json')
    const good = await queue.enqueue(job({ to: 'good@example.com', delayMs: 300 }))
    await transport.waitFor({ jobId: good.id })
    await waitUntil(() => dead.length === 3)
    expect(dead.map((event) => event.id).sort()).toEqual(['', 'no-such-job', unreadable.id].sort())
    expect((await queue.deadLetters.list()).map((letter) => letter.id).sort()).toEqual(
      ['', 'no-such-job', unreadable.id].sort(),
    )
    expect(transport.messages).toHaveLength(1)
    expect(w.running).toBe(true)
  })

  test('an entry delivered more than maxDeliveries times', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const stream = `${prefix}:send:normal`
    await redis.xgroup('CREATE', stream, 'workers', '0', 'MKSTREAM')
    const { id } = await queue.enqueue(job())
    const read = (await redis.xreadgroup('GROUP', 'workers', 'ghost', 'STREAMS', stream, '>')) as [
      string,
      [string, string[]][],
    ][]
    const entryId = read[0]?.[1][0]?.[0] as string
    // Each claim counts as one more delivery, as when workers keep crashing on this entry.
    for (let i = 0; i < 5; i++) await redis.xclaim(stream, 'workers', 'ghost', 0, entryId)
    const w = worker({ visibilityTimeoutMs: 100, maxDeliveries: 5 })
    const deadEvent = new Promise<DeadEvent>((resolve) => w.on('dead', resolve))
    await new Promise((resolve) => setTimeout(resolve, 120))
    await w.start()
    expect(await deadEvent).toMatchObject({ id, error: expect.stringContaining('delivered 7 times') })
    expect(transport.attempts).toBe(0)
    expect((await queue.getStatus(id))?.status).toBe('dead')
  })
})

describe('Redis outage', () => {
  const redisServer = persistentRedis()

  test('Redis restarted while a worker runs: it resumes by itself and drains, no job lost', async () => {
    const { server: instance, client } = await redisServer()
    const { queue, worker, transport, settled } = harness(client)
    slowSends(transport, 4)
    const total = 2000
    const enqueued = await queue.enqueueMany(Array.from({ length: total }, (_, i) => job({ to: `o${i}@example.com` })))
    const concurrency = 10
    const w = worker({ concurrency })
    const errors: MailstreamError[] = []
    w.on('error', (error) => errors.push(error))
    await w.start()
    await transport.waitForCount(300, { timeoutMs: 20_000 })

    await instance.stop()
    const sentWhileDown = transport.messages.length
    await new Promise((resolve) => setTimeout(resolve, 700))
    expect(transport.messages.length - sentWhileDown).toBeLessThanOrEqual(concurrency)
    await instance.start()

    await transport.waitForCount(total, { timeoutMs: 60_000 })
    for (const { id } of enqueued) expect((await settled(id, 20_000)).status).toBe('sent')
    expect(errors.length).toBeGreaterThan(0)
    expect(errors.every((error) => error.code === 'E_REDIS')).toBe(true)
    const counts = sendCounts(transport)
    expect(counts.size).toBe(total)
    const duplicates = [...counts.values()].filter((count) => count > 1).length
    expect(duplicates).toBeLessThanOrEqual(concurrency)
    expect(w.running).toBe(true)
    await w.stop()
  })
})
