import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { waitUntil } from '../helpers/redis.js'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, run, queue, entries, listen } = createScriptTestbed()
const NOW = 1_700_000_000_000
const TTL = 3600

function cancel(keys: QueueKeys, id: string, batchId = '') {
  const batchKey = batchId ? keys.batch(batchId) : keys.status(id)
  const channel = batchId ? keys.progress(batchId) : ''
  return run<[string, number]>(
    'cancel',
    [keys.status(id), keys.delayed, ...keys.streams, batchKey],
    [id, NOW, TTL, batchId, GROUP, channel],
  )
}

/** A queued job with its entry in the stream of its priority, not yet read by any worker. */
async function queued(keys: QueueKeys, id: string, priority: 'high' | 'normal' | 'low' = 'normal', batchId?: string) {
  const stream = keys.stream(priority)
  const entryId = (await redis.xadd(stream, '*', 'id', id, 'job', '{}', 'r', 'a@x.com')) as string
  await redis.hset(keys.status(id), 'status', 'queued', 'priority', priority, 'entry', entryId, 'createdAt', 1)
  if (batchId) await redis.hset(keys.status(id), 'batch', batchId)
  return entryId
}

describe('lua/cancel', () => {
  test('an unknown job: ["", 0] and nothing is written', async () => {
    const keys = await queue()
    expect(await cancel(keys, 'nope')).toEqual(['', 0])
    expect(await redis.exists(keys.status('nope'))).toBe(0)
  })

  test.each(['high', 'normal', 'low'] as const)(
    'a queued %s job not yet delivered: its entry is deleted and the status is cancelled with a TTL',
    async (priority) => {
      const keys = await queue()
      await queued(keys, 'j1', priority)
      const other = await redis.xadd(keys.stream(priority), '*', 'id', 'j2', 'job', '{}')
      expect(await cancel(keys, 'j1')).toEqual(['queued', 1])
      expect((await entries(keys.stream(priority))).map((e) => e.id)).toEqual([other])
      const status = await redis.hgetall(keys.status('j1'))
      expect(status).toEqual({ status: 'cancelled', priority, createdAt: '1', updatedAt: String(NOW) })
      const ttl = await redis.ttl(keys.status('j1'))
      expect(ttl).toBeGreaterThan(TTL - 5)
      expect(ttl).toBeLessThanOrEqual(TTL)
    },
  )

  test("a queued job already delivered to a worker: ['active', 0], entry and status untouched", async () => {
    const keys = await queue()
    const entryId = await queued(keys, 'j1')
    await redis.xreadgroup('GROUP', GROUP, 'c1', 'COUNT', 10, 'STREAMS', keys.streams[1], '>')
    const before = await redis.hgetall(keys.status('j1'))
    expect(await cancel(keys, 'j1')).toEqual(['active', 0])
    expect((await entries(keys.streams[1])).map((e) => e.id)).toEqual([entryId])
    expect(await redis.hgetall(keys.status('j1'))).toEqual(before)
    expect(await redis.ttl(keys.status('j1'))).toBe(-1)
  })

  test('a queued job on a stream with no consumer group yet can still be cancelled', async () => {
    const keys = await queue()
    await redis.del(keys.streams[1])
    await queued(keys, 'j1')
    expect(await cancel(keys, 'j1')).toEqual(['queued', 1])
    expect(await redis.xlen(keys.streams[1])).toBe(0)
  })

  test.each(['scheduled', 'retrying', 'throttled'])('a %s job leaves the delayed set', async (status) => {
    const keys = await queue()
    await redis.zadd(keys.delayed, NOW + 1000, 'j1', NOW + 2000, 'j2')
    await redis.hset(keys.status('j1'), 'status', status, 'dueAt', NOW + 1000, 'job', '{}', 'rcpt', 'a@x.com')
    expect(await cancel(keys, 'j1')).toEqual([status, 1])
    expect(await redis.zrange(keys.delayed, 0, -1)).toEqual(['j2'])
    expect(await redis.hgetall(keys.status('j1'))).toEqual({ status: 'cancelled', updatedAt: String(NOW) })
  })

  test.each(['sent', 'dead', 'suppressed', 'cancelled'])("a %s job cannot be cancelled: ['%s', 0]", async (final) => {
    const keys = await queue()
    await redis.hset(keys.status('j1'), 'status', final, 'updatedAt', 5)
    expect(await cancel(keys, 'j1')).toEqual([final, 0])
    expect(await redis.hgetall(keys.status('j1'))).toEqual({ status: final, updatedAt: '5' })
  })

  test('cancelling twice: the second call changes nothing', async () => {
    const keys = await queue()
    await queued(keys, 'j1')
    expect(await cancel(keys, 'j1')).toEqual(['queued', 1])
    expect(await cancel(keys, 'j1')).toEqual(['cancelled', 0])
  })

  test("a batch id other than the job's: ['moved', 0], nothing is written", async () => {
    const keys = await queue()
    const entryId = await queued(keys, 'j1', 'normal', 'b1')
    expect(await cancel(keys, 'j1')).toEqual(['moved', 0])
    expect(await cancel(keys, 'j1', 'b2')).toEqual(['moved', 0])
    await redis.hdel(keys.status('j1'), 'batch')
    expect(await cancel(keys, 'j1', 'b1')).toEqual(['moved', 0])
    expect((await entries(keys.streams[1])).map((e) => e.id)).toEqual([entryId])
    expect(await redis.hget(keys.status('j1'), 'status')).toBe('queued')
    expect(await redis.exists(keys.batch('b1'), keys.batch('b2'))).toBe(0)
  })

  test('a batch job counts as cancelled in its batch; the last one of a sealed batch finishes it', async () => {
    const keys = await queue()
    const progress = await listen(keys.progress('b1'))
    await queued(keys, 'j1', 'normal', 'b1')
    await queued(keys, 'j2', 'normal', 'b1')
    await redis.hset(keys.batch('b1'), 'total', 2, 'sealed', '1')

    expect(await cancel(keys, 'j1', 'b1')).toEqual(['queued', 1])
    expect(await redis.hget(keys.batch('b1'), 'cancelled')).toBe('1')
    expect(await redis.hexists(keys.batch('b1'), 'finishedAt')).toBe(0)
    await waitUntil(() => progress.messages.length === 1, 2000, 'progress')
    expect(progress.messages[0]).toMatchObject({ batchId: 'b1', completed: 1, total: 2, percentage: 50, done: false })

    expect(await cancel(keys, 'j2', 'b1')).toEqual(['queued', 1])
    expect(await redis.hgetall(keys.batch('b1'))).toMatchObject({ cancelled: '2', finishedAt: String(NOW) })
    await waitUntil(() => progress.messages.length === 2, 2000, 'final progress')
    expect(progress.messages[1]).toMatchObject({ completed: 2, total: 2, percentage: 100, cancelled: 2, done: true })
    await progress.close()
  })
})
