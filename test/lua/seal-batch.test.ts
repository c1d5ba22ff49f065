import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { waitUntil } from '../helpers/redis.js'
import { createScriptTestbed, settle } from './helpers.js'

const { redis, run, queue, listen } = createScriptTestbed()
const NOW = 1_700_000_000_000

type Reply = [total: number, sent: number, failed: number, suppressed: number, cancelled: number, finished: number]

const seal = (keys: QueueKeys, batchId: string, now = NOW) =>
  run<Reply>('sealBatch', [keys.batch(batchId)], [now, batchId, keys.progress(batchId)])

describe('lua/seal-batch', () => {
  test('a batch with jobs still to finish is sealed, not finished', async () => {
    const keys = await queue()
    await redis.hset(keys.batch('b1'), 'total', 4, 'sent', 1, 'failed', 1)
    expect(await seal(keys, 'b1')).toEqual([4, 1, 1, 0, 0, 0])
    expect(await redis.hget(keys.batch('b1'), 'sealed')).toBe('1')
    expect(await redis.hexists(keys.batch('b1'), 'finishedAt')).toBe(0)
  })

  test('a batch whose jobs have all finished is finished by sealing, with one final message', async () => {
    const keys = await queue()
    const progress = await listen(keys.progress('b1'))
    await redis.hset(keys.batch('b1'), 'total', 4, 'sent', 1, 'failed', 1, 'suppressed', 1, 'cancelled', 1)
    expect(await seal(keys, 'b1')).toEqual([4, 1, 1, 1, 1, 1])
    expect(await redis.hget(keys.batch('b1'), 'finishedAt')).toBe(String(NOW))
    await waitUntil(() => progress.messages.length === 1, 2000, 'final progress')
    expect(progress.messages[0]).toEqual({
      batchId: 'b1',
      completed: 4,
      total: 4,
      percentage: 100,
      sent: 1,
      failed: 1,
      suppressed: 1,
      cancelled: 1,
      done: true,
    })

    // Sealing again changes nothing and publishes nothing.
    expect(await seal(keys, 'b1', NOW + 1000)).toEqual([4, 1, 1, 1, 1, 1])
    expect(await redis.hget(keys.batch('b1'), 'finishedAt')).toBe(String(NOW))
    await settle(redis)
    expect(progress.messages).toHaveLength(1)
    await progress.close()
  })

  test('a batch that has no jobs at all is finished by sealing', async () => {
    const keys = await queue()
    expect(await seal(keys, 'empty')).toEqual([0, 0, 0, 0, 0, 1])
    expect(await redis.hgetall(keys.batch('empty'))).toEqual({ sealed: '1', finishedAt: String(NOW) })
  })
})
