import { describe, expect, test } from 'vitest'
import type { EmailJobInput, MailstreamError } from '../../src/index.js'
import { harness, sendCounts, slowSends } from '../helpers/queue.js'
import { connect, persistentRedis, waitUntil } from '../helpers/redis.js'

const job = (i: number, overrides: Partial<EmailJobInput> = {}): EmailJobInput => ({
  type: 'newsletter',
  to: `reader${i}@example.com`,
  subject: `Issue ${i}`,
  text: 'Hello',
  ...overrides,
})

describe('faults', () => {
  test('a transport failing 30% of sends: every job ends sent or dead after maxAttempts, none lost', async () => {
    const redis = connect()
    const { queue, transport, worker, settled } = harness(redis)
    const send = transport.send.bind(transport)
    let calls = 0
    let failures = 0
    // Deterministic 30%: every call whose number is 3, 6 or 9 modulo 10 fails transiently.
    transport.send = (message, context) => {
      calls++
      if ([3, 6, 9].includes(calls % 10)) {
        failures++
        transport.failNext('later')
      }
      return send(message, context)
    }
    const total = 2000
    const enqueued = await queue.enqueueMany(Array.from({ length: total }, (_, i) => job(i, { maxAttempts: 2 })))
    await worker({ concurrency: 50, backoff: { baseMs: 5, maxMs: 50 } }).start()
    const states = await Promise.all(enqueued.map(({ id }) => settled(id, 30_000)))

    const sent = states.filter((state) => state.status === 'sent')
    const dead = states.filter((state) => state.status === 'dead')
    expect(sent.length + dead.length).toBe(total)
    expect(dead.length).toBeGreaterThan(0)
    for (const state of dead) expect(state.attempts).toBe(2)
    for (const state of sent) expect(state.attempts).toBeLessThanOrEqual(2)
    // Every call either sent a job or failed one attempt: nothing was sent twice or skipped.
    expect(calls).toBe(sent.length + failures)
    expect(calls).toBe(sent.length + dead.length * 2 + sent.filter((state) => state.attempts === 2).length)
    const counts = sendCounts(transport)
    expect(counts.size).toBe(sent.length)
    expect([...counts.values()].every((count) => count === 1)).toBe(true)
    expect((await queue.deadLetters.list({ count: 10_000 })).length).toBe(dead.length)
  })

  describe('Redis killed with SIGKILL (appendonly yes, appendfsync always)', () => {
    const redisServer = persistentRedis()

    test('mid-drain: restarted Redis loses no job and the worker resumes within 5 s', async () => {
      const { server: instance, client } = await redisServer()
      const { queue, worker, transport, settled } = harness(client)
      slowSends(transport, 3)
      const total = 3000
      const enqueued = await queue.enqueueMany(Array.from({ length: total }, (_, i) => job(i)))
      const concurrency = 20
      const w = worker({ concurrency })
      const errors: MailstreamError[] = []
      w.on('error', (error) => errors.push(error))
      await w.start()
      await transport.waitForCount(500, { timeoutMs: 20_000 })

      await instance.kill()
      await new Promise((resolve) => setTimeout(resolve, 300))
      const before = transport.messages.length
      await instance.start()
      const restartedAt = Date.now()
      // Resumes by itself: new sends within 5 s of Redis being back, without touching the worker.
      await waitUntil(() => transport.messages.length > before + concurrency, 5000, 'the worker to resume')
      expect(Date.now() - restartedAt).toBeLessThan(5000)

      await transport.waitForCount(total, { timeoutMs: 60_000 })
      for (const { id } of enqueued) expect((await settled(id, 20_000)).status).toBe('sent')
      const counts = sendCounts(transport)
      expect(counts.size).toBe(total)
      const duplicates = [...counts.values()].filter((count) => count > 1).length
      // Only sends in flight when Redis died may repeat.
      expect(duplicates).toBeLessThanOrEqual(concurrency)
      expect(errors.length).toBeGreaterThan(0)
      expect(w.running).toBe(true)
      await w.stop()
    })
  })
})
