import { describe, expect, test } from 'vitest'
import type { EmailJobInput } from '../../src/index.js'
import { sealBatch } from '../../src/lua/seal-batch.js'
import type { BatchProgress } from '../../src/queue/batches.js'
import { queueInternals } from '../../src/queue/internals.js'
import { harness } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()

const job = (i: number, batchId: string): EmailJobInput => ({
  type: 'newsletter',
  to: `reader${i}@example.com`,
  subject: 'Issue 1',
  text: 'Hello',
  batchId,
})

async function subscribe(channel: string): Promise<{ messages: BatchProgress[]; close(): Promise<void> }> {
  const subscriber = connect()
  const messages: BatchProgress[] = []
  subscriber.on('message', (_channel, message) => messages.push(JSON.parse(message)))
  await subscriber.subscribe(channel)
  return { messages, close: async () => void (await subscriber.unsubscribe(channel)) }
}

describe('batch counters and progress', () => {
  test('counters match, progress rises, and the final message comes exactly once', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const progress = await subscribe(`${prefix}:progress:issue-1`)
    const total = 300
    transport.failNext('never', 2)
    await queue.enqueueMany(Array.from({ length: total }, (_, i) => job(i, 'issue-1')))
    await sealBatch(redis, queueInternals(queue).keys, 'issue-1')
    await worker({ concurrency: 20 }).start()
    await waitUntil(() => progress.messages.some((message) => message.done), 10_000, 'the final progress')
    await new Promise((resolve) => setTimeout(resolve, 100))

    const final = progress.messages.filter((message) => message.done)
    expect(final).toEqual([
      {
        batchId: 'issue-1',
        completed: total,
        total,
        percentage: 100,
        sent: total - 2,
        failed: 2,
        suppressed: 0,
        cancelled: 0,
        done: true,
      },
    ])
    expect(progress.messages.at(-1)?.done).toBe(true)
    const completed = progress.messages.map((message) => message.completed)
    expect(completed.length).toBeGreaterThan(2)
    expect(completed).toEqual([...completed].sort((a, b) => a - b))
    expect(await redis.hgetall(`${prefix}:batch:issue-1`)).toMatchObject({
      total: String(total),
      sent: String(total - 2),
      failed: '2',
      sealed: '1',
      finishedAt: expect.any(String),
    })
    expect(await redis.hgetall(`${prefix}:stats`)).toEqual({ sent: String(total - 2), failed: '2' })
    await progress.close()
  })

  test('a batch that finished before it was sealed publishes its final progress when sealed', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const progress = await subscribe(`${prefix}:progress:b2`)
    await queue.enqueueMany([job(1, 'b2'), job(2, 'b2')])
    await worker().start()
    await transport.waitForCount(2)
    await waitUntil(async () => (await redis.hget(`${prefix}:batch:b2`, 'sent')) === '2')
    expect(progress.messages.some((message) => message.done)).toBe(false)
    const counters = await sealBatch(redis, queueInternals(queue).keys, 'b2')
    expect(counters).toMatchObject({ total: 2, sent: 2, finished: true })
    await waitUntil(() => progress.messages.some((message) => message.done))
    expect(progress.messages.filter((message) => message.done)).toHaveLength(1)
    await progress.close()
  })

  test('cancelling the last open job of a sealed batch finishes it', async () => {
    const { queue, prefix } = harness(redis)
    const progress = await subscribe(`${prefix}:progress:b3`)
    const { id } = await queue.enqueue({ ...job(1, 'b3'), delayMs: 60_000 })
    await sealBatch(redis, queueInternals(queue).keys, 'b3')
    expect(await queue.cancel(id)).toBe(true)
    await waitUntil(() => progress.messages.some((message) => message.done))
    expect(progress.messages.map((message) => [message.completed, message.done])).toEqual([
      [0, false], // published when sealed
      [1, true],
    ])
    expect(progress.messages[1]).toMatchObject({ total: 1, cancelled: 1, percentage: 100 })
    await progress.close()
  })
})
