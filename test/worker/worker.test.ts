import { describe, expect, test } from 'vitest'
import type { DeadEvent, RetryingEvent } from '../../src/index.js'
import { harness, sendCounts, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()

const job = testJob

describe('delivery', () => {
  test('5,000 jobs across priorities, 2 workers: each sent exactly once, high before low', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const priorities = ['high', 'normal', 'low'] as const
    const jobs = Array.from({ length: 5000 }, (_, i) =>
      job({
        to: `reader${i}@example.com`,
        priority: priorities[(i * 7) % 3],
        data: { i },
      }),
    )
    const enqueued = await queue.enqueueMany(jobs)
    const priorityOf = new Map(enqueued.map((result, i) => [result.id, jobs[i]?.priority]))
    const concurrency = 20
    const workers = [worker({ concurrency }), worker({ concurrency })]
    await Promise.all(workers.map((w) => w.start()))
    await transport.waitForCount(5000, { timeoutMs: 60_000 })
    await waitUntil(async () => (await queue.stats()).streams.low.pending === 0, 10_000, 'acknowledgements')

    const counts = sendCounts(transport)
    expect(counts.size).toBe(5000)
    expect([...counts.values()].every((count) => count === 1)).toBe(true)

    const order = transport.messages.map(({ message }) => priorityOf.get(message.jobId))
    const inFlight = concurrency * workers.length
    expect(order.lastIndexOf('high')).toBeLessThan(order.indexOf('normal') + inFlight)
    expect(order.lastIndexOf('normal')).toBeLessThan(order.indexOf('low') + inFlight)

    const stats = await queue.stats()
    for (const stream of Object.values(stats.streams)) expect(stream).toMatchObject({ length: 0, pending: 0 })
    expect(await redis.ttl(`${prefix}:status:${enqueued[0]?.id}`)).toBeGreaterThan(0)
  })

  test('a high job enqueued behind a low backlog is sent within about one round', async () => {
    const { queue, transport, worker } = harness(redis)
    await queue.enqueueMany(Array.from({ length: 400 }, (_, i) => job({ to: `low${i}@example.com`, priority: 'low' })))
    const concurrency = 10
    const w = worker({ concurrency })
    // A little latency per send so that the backlog is still draining when the high job arrives.
    const slow = transport.send.bind(transport)
    transport.send = async (message, context) => {
      await new Promise((resolve) => setTimeout(resolve, 2))
      return slow(message, context)
    }
    await w.start()
    await transport.waitForCount(50)
    const sentBefore = transport.messages.length
    const urgent = await queue.enqueue(job({ to: 'urgent@example.com', priority: 'high' }))
    await transport.waitFor({ jobId: urgent.id })
    const position = transport.messages.findIndex(({ message }) => message.jobId === urgent.id)
    expect(position - sentBefore).toBeLessThanOrEqual(3 * concurrency)
    expect(transport.messages.length).toBeLessThan(400) // the backlog was still there
  })

  test('fills in the default sender, keeps headers, attachments and tags', async () => {
    const { queue, transport, worker } = harness(redis)
    await worker().start()
    const { id } = await queue.enqueue(
      job({
        cc: 'cc@example.com',
        replyTo: 'help@example.com',
        headers: { 'X-Campaign': 'spring' },
        tags: { campaign: 'spring' },
        attachments: [{ filename: 'a.txt', content: 'hi' }],
      }),
    )
    const { message } = await transport.waitFor({ jobId: id })
    expect(message).toMatchObject({
      from: { name: 'Mailstream', address: 'noreply@example.com' },
      to: [{ address: 'reader@example.com' }],
      cc: [{ address: 'cc@example.com' }],
      replyTo: [{ address: 'help@example.com' }],
      headers: { 'X-Campaign': 'spring' },
      tags: { campaign: 'spring' },
      attachments: [{ filename: 'a.txt', content: Buffer.from('hi').toString('base64') }],
    })
  })

  test('the same idempotency key sends once', async () => {
    const { queue, transport, worker } = harness(redis)
    await queue.enqueue(job({ idempotencyKey: 'welcome:1' }))
    await queue.enqueue(job({ idempotencyKey: 'welcome:1' }))
    const w = worker()
    const drained = new Promise((resolve) => w.on('drained', resolve))
    await w.start()
    await drained
    expect(transport.messages).toHaveLength(1)
  })
})

describe('scheduling and cancelling', () => {
  test('a delayed job is not sent before its time and is sent after', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    await worker().start()
    const enqueuedAt = Date.now()
    const { id } = await queue.enqueue(job({ delayMs: 600 }))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(transport.find({ jobId: id })).toBeUndefined()
    expect((await queue.getStatus(id))?.status).toBe('scheduled')
    const sent = await transport.waitFor({ jobId: id })
    expect(sent.sentAt).toBeGreaterThanOrEqual(enqueuedAt + 600)
    expect((await settled(id)).status).toBe('sent')
  })

  test('a cancelled job is never sent', async () => {
    const { queue, transport, worker } = harness(redis)
    const queued = await queue.enqueue(job({ to: 'queued@example.com' }))
    const scheduled = await queue.enqueue(job({ to: 'scheduled@example.com', delayMs: 200 }))
    expect(await queue.cancel(queued.id)).toBe(true)
    expect(await queue.cancel(scheduled.id)).toBe(true)
    const marker = await queue.enqueue(job({ to: 'marker@example.com', delayMs: 400 }))
    await worker().start()
    await transport.waitFor({ jobId: marker.id })
    expect(transport.messages.map(({ message }) => message.jobId)).toEqual([marker.id])
    expect((await queue.getStatus(queued.id))?.status).toBe('cancelled')
    expect((await queue.getStatus(scheduled.id))?.status).toBe('cancelled')
    expect(await queue.cancel(marker.id)).toBe(false) // already sent
  })
})

describe('failures', () => {
  test('transient failures are retried with growing delays, then sent', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const w = worker({ backoff: { baseMs: 40, maxMs: 10_000 } })
    const retries: (RetryingEvent & { at: number })[] = []
    w.on('retrying', (event) => retries.push({ ...event, at: Date.now() }))
    const attemptsAt: number[] = []
    const send = transport.send.bind(transport)
    transport.send = (message, context) => {
      attemptsAt.push(Date.now())
      return send(message, context)
    }
    transport.failNext('later', 3)
    await w.start()
    const { id } = await queue.enqueue(job({ maxAttempts: 4 }))
    const sent = await transport.waitFor({ jobId: id })
    expect(sent.attempt).toBe(4)
    expect(retries.map((event) => event.attempts)).toEqual([1, 2, 3])
    const delays = retries.map((event) => event.retryAt - event.at)
    // 40 ms * 2^attempt with +-20 % jitter: 80, 160, 320 ms: each wait longer than the last.
    expect(delays[1]).toBeGreaterThan(delays[0] as number)
    expect(delays[2]).toBeGreaterThan(delays[1] as number)
    // No attempt ran before its retry was due.
    for (const [i, event] of retries.entries()) expect(attemptsAt[i + 1]).toBeGreaterThanOrEqual(event.retryAt)
    expect(await settled(id)).toMatchObject({ status: 'sent', attempts: 4 })
  })

  test('a job that keeps failing transiently is dead after maxAttempts', async () => {
    const { queue, transport, worker } = harness(redis)
    transport.failNext('later', 5)
    const w = worker()
    const dead = new Promise<DeadEvent>((resolve) => w.on('dead', resolve))
    await w.start()
    const { id } = await queue.enqueue(job({ maxAttempts: 2 }))
    expect(await dead).toMatchObject({ id, attempts: 2 })
    expect(transport.attempts).toBe(2)
    expect(await queue.getStatus(id)).toMatchObject({
      status: 'dead',
      attempts: 2,
    })
  })

  test('a permanent failure is dead-lettered on the first try; retrying the letter sends it', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    transport.failNext('never', 1, {
      message: 'mailbox does not exist',
      statusCode: 550,
    })
    const w = worker()
    const dead = new Promise<DeadEvent>((resolve) => w.on('dead', resolve))
    await w.start()
    const { id } = await queue.enqueue(job({ to: 'gone@example.com' }))
    expect(await dead).toMatchObject({ id, attempts: 1 })
    expect(transport.attempts).toBe(1)
    const [letter] = await queue.deadLetters.list()
    expect(letter).toMatchObject({
      id,
      attempts: 1,
      error: expect.stringContaining('mailbox does not exist'),
    })
    expect(letter?.job?.to).toEqual([{ address: 'gone@example.com' }])
    expect(await queue.getStatus(id)).toMatchObject({
      status: 'dead',
      attempts: 1,
    })

    expect(await queue.deadLetters.retry(id)).toBe(1)
    const sent = await transport.waitFor({ jobId: id })
    expect(sent.attempt).toBe(1) // a retried letter starts with fresh attempts
    expect((await settled(id)).status).toBe('sent')
    expect(await queue.deadLetters.list()).toEqual([])
    expect(await queue.deadLetters.retry(id)).toBe(0)
  })

  test('a throttle re-delays without using an attempt', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    transport.failNext('throttle', 3)
    const w = worker()
    const throttled: RetryingEvent[] = []
    w.on('retrying', (event) => throttled.push(event))
    await w.start()
    const { id } = await queue.enqueue(job({ maxAttempts: 1 }))
    const sent = await transport.waitFor({ jobId: id })
    expect(sent.attempt).toBe(1)
    expect(throttled.map((event) => [event.throttled, event.attempts])).toEqual([
      [true, 0],
      [true, 0],
      [true, 0],
    ])
    expect(await settled(id)).toMatchObject({ status: 'sent', attempts: 1 })
  })

  test('dead letters can be purged', async () => {
    const { queue, transport, worker } = harness(redis)
    transport.failNext('never', 2)
    const w = worker()
    let dead = 0
    w.on('dead', () => dead++)
    await w.start()
    await queue.enqueueMany([job(), job()])
    await waitUntil(() => dead === 2)
    expect(await queue.deadLetters.purge({ before: Date.now() - 60_000 })).toBe(0)
    expect(await queue.deadLetters.purge()).toBe(2)
    expect((await queue.stats()).dead).toBe(0)
  })

  test('a job naming a template without a renderer is dead with E_CONFIG, not retried', async () => {
    const { queue, transport, worker } = harness(redis)
    const w = worker()
    const dead = new Promise<DeadEvent>((resolve) => w.on('dead', resolve))
    await w.start()
    await queue.enqueue({
      type: 'welcome',
      to: 'reader@example.com',
      template: 'welcome',
    })
    expect((await dead).error).toContain('no templates')
    expect(transport.attempts).toBe(0)
  })
})

describe('suppression', () => {
  test('a suppressed address is not sent to', async () => {
    const { queue, transport, worker } = harness(redis)
    await queue.suppression.add('bounced@example.com', 'bounce')
    const w = worker()
    const suppressed: string[] = []
    w.on('suppressed', (event) => suppressed.push(event.id))
    await w.start()
    const blocked = await queue.enqueue(job({ to: 'Bounced@Example.com' }))
    const partial = await queue.enqueue(job({ to: ['bounced@example.com', 'ok@example.com'] }))
    const sent = await transport.waitFor({ jobId: partial.id })
    expect(sent.message.to).toEqual([{ address: 'ok@example.com' }])
    await waitUntil(() => suppressed.length === 1)
    expect(suppressed).toEqual([blocked.id])
    expect(await queue.getStatus(blocked.id)).toMatchObject({
      status: 'suppressed',
    })
    expect(transport.find({ jobId: blocked.id })).toBeUndefined()
  })
})

describe('lifecycle', () => {
  test('stop() waits for in-flight sends and leaves nothing pending', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const send = transport.send.bind(transport)
    transport.send = async (message, context) => {
      await new Promise((resolve) => setTimeout(resolve, 150))
      return send(message, context)
    }
    const w = worker({ concurrency: 5 })
    await queue.enqueueMany(Array.from({ length: 5 }, () => job()))
    await w.start()
    await waitUntil(() => w.inFlight === 5)
    await w.stop()
    expect(transport.messages).toHaveLength(5)
    expect(w.running).toBe(false)
    expect(w.inFlight).toBe(0)
    expect((await redis.xpending(`${prefix}:send:normal`, 'workers')) as unknown[]).toEqual([0, null, null, null])
  })

  test('events: sent, failed and drained; listener errors become error events', async () => {
    const { queue, transport, worker } = harness(redis)
    const w = worker()
    const seen: string[] = []
    w.on('sent', () => seen.push('sent'))
    w.on('failed', (event) => seen.push(`failed:${event.retry}:${event.final}`))
    const off = w.on('sent', () => {
      throw new Error('listener bug')
    })
    const errors: string[] = []
    w.on('error', (error) => errors.push(error.message))
    const drained = new Promise<{ processed: number }>((resolve) => w.on('drained', resolve))
    transport.failNext('never')
    await queue.enqueueMany([job(), job()])
    await w.start()
    expect((await drained).processed).toBe(2)
    expect(seen.sort()).toEqual(['failed:never:true', 'sent'])
    expect(errors).toEqual([expect.stringContaining('listener bug')])
    off()
  })

  test('pause() stops taking jobs until resume()', async () => {
    const { queue, transport, worker } = harness(redis)
    const w = worker()
    await w.start()
    w.pause('maintenance')
    expect(w.paused).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 50))
    const { id } = await queue.enqueue(job())
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(transport.messages).toHaveLength(0)
    w.resume()
    await transport.waitFor({ jobId: id })
  })

  test('a transport asking to pause dead-letters the job and pauses the worker', async () => {
    const { queue, transport, worker } = harness(redis)
    const w = worker()
    const paused = new Promise<{ reason: string }>((resolve) => w.on('paused', resolve))
    transport.failNext('never', 1, {
      pause: true,
      message: 'sending paused for this account',
    })
    await w.start()
    const { id } = await queue.enqueue(job())
    expect((await paused).reason).toContain('sending paused')
    expect(w.paused).toBe(true)
    await waitUntil(async () => (await queue.getStatus(id))?.status === 'dead')
  })

  test('bad worker options are E_CONFIG naming the field', () => {
    const { worker } = harness(redis)
    expect(() => worker({ concurrency: 0 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'concurrency' }),
    )
    expect(() => worker({ transport: {} as never })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'transport' }),
    )
    expect(() => worker({ from: 'nobody' })).toThrow(expect.objectContaining({ code: 'E_CONFIG', field: 'from' }))
  })
})
