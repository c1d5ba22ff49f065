import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, queue, entries } = createScriptTestbed()
const NOW = 1_700_000_000_000
const IDEM_TTL = 86_400

interface Job {
  id: string
  payload?: string
  due?: number
  priority?: 'high' | 'normal' | 'low'
  type?: string
  maxAttempts?: number
  batchId?: string
  rcpt?: string
  idem?: string
  /** Fingerprint, sent as an 8th value in the packed string when set. */
  fp?: string
}

/**
 * Packs jobs exactly as the header describes: the status key, then the idempotency and batch keys
 * only for a job that has them, and 3 values per job, the fingerprint optional.
 */
function enqueue(keys: QueueKeys, jobs: Job[]) {
  const scriptKeys: string[] = [keys.delayed, ...keys.streams]
  const args: (string | number)[] = [NOW, IDEM_TTL]
  for (const job of jobs) {
    scriptKeys.push(keys.status(job.id))
    if (job.idem) scriptKeys.push(keys.idem(job.idem))
    if (job.batchId) scriptKeys.push(keys.batch(job.batchId))
    const packed = [
      job.due ?? 0,
      job.priority ?? 'normal',
      job.type ?? 'welcome',
      job.maxAttempts ?? 3,
      job.batchId ?? '',
      job.rcpt ?? 'a@x.com',
      job.idem ? 1 : 0,
      ...(job.fp ? [job.fp] : []),
    ].join(' ')
    args.push(job.id, job.payload ?? `{"id":"${job.id}"}`, packed)
  }
  return run<(string | number)[]>('enqueue', scriptKeys, args)
}

describe('lua/enqueue', () => {
  test('a job due now goes to the stream of its priority, its status hash naming the entry', async () => {
    const keys = await queue()
    expect(
      await enqueue(keys, [
        { id: 'j1', priority: 'high', type: 'newsletter', maxAttempts: 5, rcpt: 'a@x.com,b@x.com' },
      ]),
    ).toEqual(['j1', 'queued', 1])
    const [entry] = await entries(keys.streams[0])
    expect(entry?.fields).toEqual({ id: 'j1', job: '{"id":"j1"}', r: 'a@x.com,b@x.com' })
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'queued',
      priority: 'high',
      type: 'newsletter',
      maxAttempts: '5',
      createdAt: String(NOW),
      entry: entry?.id,
    })
    expect(await redis.ttl(keys.status('j1'))).toBe(-1)
    expect(await redis.xlen(keys.streams[1])).toBe(0)
    expect(await redis.zcard(keys.delayed)).toBe(0)
  })

  test('a job due later goes to the delayed set, its payload and recipients kept in the status hash', async () => {
    const keys = await queue()
    expect(await enqueue(keys, [{ id: 'j1', due: NOW + 60_000, priority: 'low' }])).toEqual(['j1', 'scheduled', 1])
    expect(await redis.zrange(keys.delayed, 0, -1, 'WITHSCORES')).toEqual(['j1', String(NOW + 60_000)])
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'scheduled',
      priority: 'low',
      type: 'welcome',
      maxAttempts: '3',
      createdAt: String(NOW),
      dueAt: String(NOW + 60_000),
      job: '{"id":"j1"}',
      rcpt: 'a@x.com',
    })
    for (const stream of keys.streams) expect(await redis.xlen(stream)).toBe(0)
  })

  test('an id that names a job already: [id, its status, 0] and nothing is written', async () => {
    const keys = await queue()
    await enqueue(keys, [{ id: 'j1', due: NOW + 1000 }])
    expect(await enqueue(keys, [{ id: 'j1', payload: '{"other":true}' }])).toEqual(['j1', 'scheduled', 0])
    expect(await redis.xlen(keys.streams[1])).toBe(0)
    expect(await redis.hget(keys.status('j1'), 'job')).toBe('{"id":"j1"}')
  })

  test("an idempotency key: set with its TTL for a new job; a later job with it gets [first id, '', 0]", async () => {
    const keys = await queue()
    expect(await enqueue(keys, [{ id: 'j1', idem: 'k' }])).toEqual(['j1', 'queued', 1])
    expect(await redis.get(keys.idem('k'))).toBe('j1')
    const ttl = await redis.ttl(keys.idem('k'))
    expect(ttl).toBeGreaterThan(IDEM_TTL - 5)
    expect(ttl).toBeLessThanOrEqual(IDEM_TTL)

    expect(await enqueue(keys, [{ id: 'j2', idem: 'k' }])).toEqual(['j1', '', 0])
    expect(await redis.exists(keys.status('j2'))).toBe(0)
    expect(await redis.xlen(keys.streams[1])).toBe(1)
  })

  test('an existing id with a new idempotency key: the key is not written', async () => {
    const keys = await queue()
    await enqueue(keys, [{ id: 'j1' }])
    expect(await enqueue(keys, [{ id: 'j1', idem: 'k' }])).toEqual(['j1', 'queued', 0])
    expect(await redis.exists(keys.idem('k'))).toBe(0)
  })

  test('many jobs in one call: one triple each, a repeated id within the call found as a duplicate', async () => {
    const keys = await queue()
    const reply = await enqueue(keys, [
      { id: 'a', priority: 'high' },
      { id: 'b', due: NOW + 5 },
      { id: 'a', priority: 'low' },
      { id: 'c', priority: 'low' },
    ])
    expect(reply).toEqual(['a', 'queued', 1, 'b', 'scheduled', 1, 'a', 'queued', 0, 'c', 'queued', 1])
    expect((await entries(keys.streams[0])).map((e) => e.fields.id)).toEqual(['a'])
    expect((await entries(keys.streams[2])).map((e) => e.fields.id)).toEqual(['c'])
  })

  test("a batch's total counts its new jobs only; each job's status names its batch", async () => {
    const keys = await queue()
    await enqueue(keys, [{ id: 'old', batchId: 'b1' }])
    expect(await redis.hget(keys.batch('b1'), 'total')).toBe('1')
    const reply = await enqueue(keys, [
      { id: 'old', batchId: 'b1' },
      { id: 'n1', batchId: 'b1' },
      { id: 'n2', batchId: 'b1', due: NOW + 1000 },
      { id: 'x', batchId: 'b2' },
      { id: 'free' },
    ])
    expect(reply.filter((_, i) => i % 3 === 2)).toEqual([0, 1, 1, 1, 1])
    expect(await redis.hgetall(keys.batch('b1'))).toEqual({ total: '3' })
    expect(await redis.hgetall(keys.batch('b2'))).toEqual({ total: '1' })
    expect(await redis.hget(keys.status('n1'), 'batch')).toBe('b1')
    expect(await redis.hget(keys.status('n2'), 'batch')).toBe('b1')
    expect(await redis.hexists(keys.status('free'), 'batch')).toBe(0)
  })

  test("a job of a cancelled batch: [id, 'cancelled', 2] and nothing is written", async () => {
    const keys = await queue()
    await redis.hset(keys.batch('b1'), 'total', 4, 'cancelledAt', NOW - 1)
    const reply = await enqueue(keys, [
      { id: 'j1', batchId: 'b1', idem: 'k1' },
      { id: 'j2', batchId: 'b1', due: NOW + 1000 },
      { id: 'j3' },
    ])
    expect(reply).toEqual(['j1', 'cancelled', 2, 'j2', 'cancelled', 2, 'j3', 'queued', 1])
    expect(await redis.exists(keys.status('j1'), keys.status('j2'), keys.idem('k1'))).toBe(0)
    expect(await redis.hget(keys.batch('b1'), 'total')).toBe('4')
    expect(await redis.zcard(keys.delayed)).toBe(0)
    expect(await redis.xlen(keys.streams[1])).toBe(1)
  })

  test('a job of a cancelled batch that exists already is reported as it is, not as cancelled', async () => {
    const keys = await queue()
    await enqueue(keys, [{ id: 'j1', batchId: 'b1' }])
    await redis.hset(keys.batch('b1'), 'cancelledAt', NOW)
    expect(await enqueue(keys, [{ id: 'j1', batchId: 'b1' }])).toEqual(['j1', 'queued', 0])
  })

  test("a fingerprint is stored with the key as '<id> <fingerprint>'; the same one is a duplicate", async () => {
    const keys = await queue()
    expect(await enqueue(keys, [{ id: 'j1', idem: 'k', fp: 'aaa' }])).toEqual(['j1', 'queued', 1])
    expect(await redis.get(keys.idem('k'))).toBe('j1 aaa')
    expect(await redis.ttl(keys.idem('k'))).toBeGreaterThan(IDEM_TTL - 5)
    expect(await enqueue(keys, [{ id: 'j2', idem: 'k', fp: 'aaa' }])).toEqual(['j1', '', 0])
    // Without a fingerprint the stored one is not compared, and the job id is read from the value.
    expect(await enqueue(keys, [{ id: 'j3', idem: 'k' }])).toEqual(['j1', '', 0])
  })

  test("another fingerprint for a key: [first id, '', 3] and nothing is written", async () => {
    const keys = await queue()
    await enqueue(keys, [{ id: 'j1', idem: 'k', fp: 'aaa' }])
    const reply = await enqueue(keys, [
      { id: 'j2', idem: 'k', fp: 'bbb', batchId: 'b1' },
      { id: 'j3', idem: 'other', fp: 'bbb' },
    ])
    expect(reply).toEqual(['j1', '', 3, 'j3', 'queued', 1])
    expect(await redis.exists(keys.status('j2'), keys.batch('b1'))).toBe(0)
    expect(await redis.get(keys.idem('k'))).toBe('j1 aaa')
    expect(await redis.xlen(keys.streams[1])).toBe(2)
  })

  test('a key stored without a fingerprint is never a conflict', async () => {
    const keys = await queue()
    await enqueue(keys, [{ id: 'j1', idem: 'k' }])
    expect(await enqueue(keys, [{ id: 'j2', idem: 'k', fp: 'bbb' }])).toEqual(['j1', '', 0])
    expect(await redis.get(keys.idem('k'))).toBe('j1')
  })
})
