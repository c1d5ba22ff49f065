import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, queue, entries } = createScriptTestbed()
const NOW = 1_700_000_000_000
const PAYLOAD = '{"id":"j1","type":"welcome"}'

function retryDead(keys: QueueKeys, deadEntryId: string, batchId = '') {
  return run<number>(
    'retryDead',
    [keys.dead, keys.status('j1'), keys.streams[0], batchId ? keys.batch(batchId) : keys.status('j1')],
    [deadEntryId, 'j1', PAYLOAD, 'high', 'welcome', NOW, 4, batchId, 'a@x.com,b@x.com'],
  )
}

/** A job that died: its dead letter and its final status hash with a TTL. */
async function deadJob(keys: QueueKeys, batchId?: string) {
  const letter = (await redis.xadd(
    keys.dead,
    '*',
    'id',
    'j1',
    'job',
    PAYLOAD,
    'error',
    'boom',
    'attempts',
    3,
  )) as string
  await redis.hset(keys.status('j1'), 'status', 'dead', 'error', 'boom', 'attempts', 3, 'messageId', 'old', 'entry', '')
  if (batchId) await redis.hset(keys.status('j1'), 'batch', batchId)
  await redis.expire(keys.status('j1'), 3600)
  return letter
}

describe('lua/retry-dead', () => {
  test('moves the letter to the send stream as a fresh job with a new status hash', async () => {
    const keys = await queue()
    const other = await redis.xadd(keys.dead, '*', 'id', 'other')
    const letter = await deadJob(keys)
    expect(await retryDead(keys, letter)).toBe(1)
    expect((await entries(keys.dead)).map((e) => e.id)).toEqual([other])
    const [entry] = await entries(keys.streams[0])
    expect(entry?.fields).toEqual({ id: 'j1', job: PAYLOAD, r: 'a@x.com,b@x.com' })
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'queued',
      priority: 'high',
      type: 'welcome',
      attempts: '0',
      maxAttempts: '4',
      createdAt: String(NOW),
      updatedAt: String(NOW),
      entry: entry?.id,
    })
    // A live job keeps its status until it is final again.
    expect(await redis.ttl(keys.status('j1'))).toBe(-1)
  })

  test('a letter already gone (retried or purged meanwhile): 0 and nothing is written', async () => {
    const keys = await queue()
    const letter = await deadJob(keys)
    expect(await retryDead(keys, letter)).toBe(1)
    await redis.hset(keys.status('j1'), 'status', 'sent')
    expect(await retryDead(keys, letter)).toBe(0)
    expect(await redis.xlen(keys.streams[0])).toBe(1)
    expect(await redis.hget(keys.status('j1'), 'status')).toBe('sent')
  })

  test('a batch job: failed goes down by one and the batch is not finished any more', async () => {
    const keys = await queue()
    await redis.hset(keys.batch('b1'), 'total', 2, 'sent', 1, 'failed', 1, 'sealed', '1', 'finishedAt', NOW - 5)
    const letter = await deadJob(keys, 'b1')
    expect(await retryDead(keys, letter, 'b1')).toBe(1)
    expect(await redis.hget(keys.status('j1'), 'batch')).toBe('b1')
    expect(await redis.hgetall(keys.batch('b1'))).toEqual({ total: '2', sent: '1', failed: '0', sealed: '1' })
  })
})
