import { describe, expect, test } from 'vitest'
import type { EmailJobInput, PaceEvent, RetryingEvent } from '../../src/index.js'
import { harness, sendCounts } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const job = (overrides: Partial<EmailJobInput> = {}): EmailJobInput => ({
  type: 'newsletter',
  to: 'reader@example.com',
  subject: 'Issue',
  text: 'Hello',
  ...overrides,
})

describe('worker rate limit', () => {
  test('charges one unit per recipient (to + cc + bcc) left after the suppression check', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    await queue.suppression.add('gone@example.com', 'bounce')
    const w = worker({ rateLimit: { perSecond: 10, burst: 1 } })
    const sentAt: number[] = []
    const send = transport.send.bind(transport)
    transport.send = (message, context) => {
      sentAt.push(Date.now())
      return send(message, context)
    }
    await queue.enqueue(job({ to: 'a@example.com', cc: 'b@example.com', bcc: 'c@example.com' }))
    await queue.enqueue(job({ to: 'd@example.com', cc: 'gone@example.com', bcc: 'e@example.com' }))
    await queue.enqueue(job({ to: ['f@example.com', 'g@example.com', 'h@example.com'] }))
    await w.start()
    await transport.waitForCount(3)
    // The limiter's state is the time at which the bucket is full again: start + units * 100 ms.
    // Read it before it expires (it lives as long as the last job's 3 units, 300 ms).
    const tat = Number(await redis.get(`rate:limit:${prefix}:send`))
    const charged = (tat - (sentAt[0] as number)) / 100
    // 3 + 2 (the suppressed address is not charged) + 3 = 8 units; the first send happened a few ms
    // after its units were taken (Date.now() is whole ms: up to 1 ms early).
    expect(charged).toBeGreaterThan(7.5)
    expect(charged).toBeLessThan(8.02)
    expect(transport.messages[1]?.message.cc).toBeUndefined()
  })

  test('strict priority: a high job behind a saturated low backlog gets one of the next free units', async () => {
    const { queue, transport, worker } = harness(redis)
    await queue.enqueueMany(Array.from({ length: 100 }, (_, i) => job({ to: `low${i}@example.com`, priority: 'low' })))
    const concurrency = 10
    const w = worker({ concurrency, rateLimit: { perSecond: 20, burst: 1 } })
    await w.start()
    await transport.waitForCount(3)
    // Only the jobs whose units are free soon are taken from the stream, never `concurrency` of them.
    let maxPending = 0
    for (let i = 0; i < 25; i++) {
      maxPending = Math.max(maxPending, (await queue.stats()).streams.low.pending)
      await sleep(20)
    }
    expect(maxPending).toBeLessThanOrEqual(2)
    // High jobs at moments unrelated to the sending rhythm: each goes after at most the jobs that
    // already hold units (without the bound, after up to `concurrency` of them).
    for (let round = 0; round < 3; round++) {
      await sleep(170)
      const sentBefore = transport.messages.length
      const urgent = await queue.enqueue(job({ to: `urgent${round}@example.com`, priority: 'high' }))
      await transport.waitFor({ jobId: urgent.id })
      const position = transport.messages.findIndex(({ message }) => message.jobId === urgent.id)
      expect(position - sentBefore).toBeLessThanOrEqual(3)
    }
  })

  test('a throttle lowers the pace multiplicatively and it climbs back additively; no attempt is used', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const enqueued = await queue.enqueueMany(
      Array.from({ length: 120 }, (_, i) => job({ to: `r${i}@example.com`, maxAttempts: 1 })),
    )
    const w = worker({
      concurrency: 5,
      rateLimit: { perSecond: 50, burst: 1, aimd: { decrease: 0.5, increase: 0.1, intervalMs: 200 } },
    })
    const paces: (PaceEvent & { at: number })[] = []
    w.on('pace', (event) => paces.push({ ...event, at: Date.now() }))
    const throttled: RetryingEvent[] = []
    w.on('retrying', (event) => throttled.push(event))
    expect(w.pace).toBe(50)
    await w.start()
    await transport.waitForCount(30)
    transport.failNext('throttle', 1)
    await waitUntil(() => paces.some((event) => event.pace === 50), 5000, 'the pace to recover')

    const [lowered, ...recovering] = paces
    // Halved from the observed rate (about 50 per second).
    expect(lowered).toMatchObject({ reason: 'throttle', perSecond: 50 })
    expect(lowered?.pace).toBeGreaterThan(20)
    expect(lowered?.pace).toBeLessThanOrEqual(25)
    // Then + 5 (0.1 * 50) per 200 ms up to 50.
    expect(recovering.every((event) => event.reason === 'recover')).toBe(true)
    for (const [i, event] of recovering.entries()) {
      const before = i === 0 ? (lowered as PaceEvent).pace : (recovering[i - 1] as PaceEvent).pace
      expect(event.pace - before).toBeGreaterThan(0)
      expect(event.pace - before).toBeLessThanOrEqual(5 + 1e-9)
    }
    expect(recovering.at(-1)?.pace).toBe(50)
    expect(w.pace).toBe(50)
    // While lowered, this worker sent at the lower pace: 200 ms at <= 25/s, then at <= 30/s.
    const loweredAt = (lowered as PaceEvent & { at: number }).at
    const sentWhileLowered = transport.filter(({ sentAt }) => sentAt > loweredAt && sentAt <= loweredAt + 400)
    expect(sentWhileLowered.length).toBeLessThanOrEqual(14) // 20 at the full pace

    expect(throttled).toHaveLength(1)
    expect(throttled[0]).toMatchObject({ throttled: true, attempts: 0 })
    const state = await settled(throttled[0]?.id as string)
    expect(state).toMatchObject({ status: 'sent', attempts: 1 }) // maxAttempts 1, and still sent
    await transport.waitForCount(enqueued.length, { timeoutMs: 10_000 })
    expect((await queue.stats()).dead).toBe(0)
  })

  test('stopped while a job waits for its units: the job stays pending and is sent once by another worker', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const enqueued = await queue.enqueueMany(Array.from({ length: 3 }, (_, i) => job({ to: `s${i}@example.com` })))
    // A job waits for its units at most visibilityTimeoutMs / 4 (600 ms here) before it is re-delayed instead.
    const first = worker({ rateLimit: { perSecond: 2, burst: 1 }, visibilityTimeoutMs: 2400 })
    await first.start()
    await transport.waitForCount(1)
    // The second job holds units due in about 500 ms; the third was not fetched.
    await waitUntil(() => first.inFlight === 1, 1000, 'the second job to wait for its units')
    await first.stop({ timeoutMs: 50 })
    expect(transport.messages).toHaveLength(1)
    const [pendingCount] = (await redis.xpending(`${prefix}:send:normal`, 'workers')) as [number]
    expect(pendingCount).toBe(1)
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(2)

    const second = worker({ rateLimit: { perSecond: 2, burst: 1 }, visibilityTimeoutMs: 300 })
    await second.start()
    await transport.waitForCount(3, { timeoutMs: 10_000 })
    const counts = sendCounts(transport)
    expect(enqueued.map(({ id }) => counts.get(id))).toEqual([1, 1, 1])
  })

  test('a job that would wait too long for its units is re-delayed, its units given back: the rate still holds', async () => {
    const { queue, transport, worker } = harness(redis)
    const recipients = (i: number) => Array.from({ length: 5 }, (_, r) => `j${i}r${r}@example.com`)
    const enqueued = await queue.enqueueMany(Array.from({ length: 5 }, (_, i) => job({ to: recipients(i) })))
    // 5 recipients at 10/s is 500 ms per job; two workers contend, and a job waits at most 300 ms.
    const options = { rateLimit: { perSecond: 10, burst: 1 }, visibilityTimeoutMs: 1200 }
    const workers = [worker(options), worker(options)]
    const delayed: RetryingEvent[] = []
    for (const w of workers) w.on('retrying', (event) => delayed.push(event))
    await Promise.all(workers.map((w) => w.start()))
    await transport.waitForCount(5, { timeoutMs: 10_000 })
    expect(sendCounts(transport).size).toBe(enqueued.length)
    expect(delayed.every((event) => event.throttled && event.attempts === 0)).toBe(true)
    const gaps = transport.messages.slice(1).map((sent, i) => sent.sentAt - (transport.messages[i]?.sentAt as number))
    for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(490)
    // The units given back are used by the next job: no 500-ms slot is lost (4 gaps of 500 ms).
    const span = (transport.messages[4]?.sentAt as number) - (transport.messages[0]?.sentAt as number)
    expect(span).toBeLessThan(2400)
    expect((await queue.stats()).dead).toBe(0)
  })

  test('bad rateLimit and dailyQuota options are E_CONFIG naming the field', () => {
    const { worker } = harness(redis)
    expect(() => worker({ rateLimit: { perSecond: 0 } })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'rateLimit.perSecond' }),
    )
    expect(() => worker({ rateLimit: { aimd: { decrease: 1 } } })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'rateLimit.aimd.decrease' }),
    )
    expect(() => worker({ dailyQuota: 0 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: expect.stringMatching(/^dailyQuota/) }),
    )
    expect(worker({ rateLimit: {} }).pace).toBe(14) // SES's default MaxSendRate
  })
})

describe('daily quota', () => {
  test('sending pauses when the window is full and resumes when it moves; nothing is dead-lettered', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const windowMs = 1500
    const w = worker({ dailyQuota: { max: 4, windowMs } })
    const events: { event: string; reason?: string; at: number }[] = []
    w.on('paused', ({ reason }) => events.push({ event: 'paused', reason, at: Date.now() }))
    w.on('resumed', ({ reason }) => events.push({ event: 'resumed', reason, at: Date.now() }))
    const enqueued = await queue.enqueueMany(Array.from({ length: 6 }, (_, i) => job({ to: `q${i}@example.com` })))
    await w.start()
    await transport.waitForCount(4)
    await waitUntil(() => w.paused, 2000, 'the quota pause')
    expect(events[0]).toMatchObject({ event: 'paused', reason: expect.stringContaining('daily quota') })
    await sleep(300)
    expect(transport.messages).toHaveLength(4)

    await transport.waitForCount(6, { timeoutMs: 5000 })
    expect(events.map(({ event }) => event)).toEqual(['paused', 'resumed'])
    // Exact rolling window: the fifth send waited until the first had left the window.
    const fifth = transport.messages[4]?.sentAt as number
    expect(fifth).toBeGreaterThanOrEqual((transport.messages[0]?.sentAt as number) + windowMs - 10)
    expect(w.paused).toBe(false)
    for (const { id } of enqueued) expect(await settled(id)).toMatchObject({ status: 'sent', attempts: 1 })
    expect((await queue.stats()).dead).toBe(0)
  })

  test('a job with more recipients than the quota has left is re-delayed without using an attempt', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const w = worker({ dailyQuota: { max: 4, windowMs: 1200 } })
    const retrying: RetryingEvent[] = []
    w.on('retrying', (event) => retrying.push(event))
    await queue.enqueue(job({ to: 'one@example.com' }))
    await queue.enqueue(job({ to: 'two@example.com' }))
    const big = await queue.enqueue(
      job({ to: ['x@example.com', 'y@example.com', 'z@example.com'], maxAttempts: 1, priority: 'low' }),
    )
    await w.start()
    await waitUntil(() => retrying.length === 1, 3000, 'the big job to be re-delayed')
    expect(retrying[0]).toMatchObject({ id: big.id, throttled: true, attempts: 0 })
    expect(transport.find({ jobId: big.id })).toBeUndefined()
    expect(await settled(big.id, 5000)).toMatchObject({ status: 'sent', attempts: 1 })
    expect((await queue.stats()).dead).toBe(0)
  })
})
