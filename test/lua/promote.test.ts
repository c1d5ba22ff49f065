import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, queue, entries } = createScriptTestbed()
const NOW = 1_700_000_000_000

const promote = (keys: QueueKeys, ids: string[]) =>
  run<number>('promote', [keys.delayed, ...keys.streams, keys.dead, ...ids.map((id) => keys.status(id))], [NOW, ...ids])

async function delayed(keys: QueueKeys, id: string, due: number, fields: Record<string, string | number> = {}) {
  await redis.zadd(keys.delayed, due, id)
  await redis.hset(keys.status(id), {
    status: 'retrying',
    priority: 'normal',
    job: `{"id":"${id}"}`,
    attempts: 1,
    rcpt: 'a@x.com',
    dueAt: due,
    ...fields,
  })
}

describe('lua/promote', () => {
  test('a due job goes to the stream of its priority with its attempts and throttles; the status is queued on that entry', async () => {
    const keys = await queue()
    await delayed(keys, 'j1', NOW - 10, { priority: 'high', attempts: 2, throttles: 3 })
    expect(await promote(keys, ['j1'])).toBe(1)
    const [entry] = await entries(keys.streams[0])
    expect(entry?.fields).toEqual({ id: 'j1', job: '{"id":"j1"}', a: '2', t: '3', r: 'a@x.com' })
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'queued',
      priority: 'high',
      attempts: '2',
      throttles: '3',
      entry: entry?.id,
      updatedAt: String(NOW),
    })
    expect(await redis.zcard(keys.delayed)).toBe(0)
  })

  test('a job due exactly now is due; one due later stays where it is', async () => {
    const keys = await queue()
    await delayed(keys, 'now', NOW)
    await delayed(keys, 'later', NOW + 1)
    expect(await promote(keys, ['now', 'later'])).toBe(1)
    expect(await redis.zrange(keys.delayed, 0, -1)).toEqual(['later'])
    expect(await redis.hget(keys.status('later'), 'status')).toBe('retrying')
    expect((await entries(keys.streams[1])).map((e) => e.fields.id)).toEqual(['now'])
  })

  test('a candidate no longer in the delayed set (promoted or cancelled meanwhile) is not moved again', async () => {
    const keys = await queue()
    await delayed(keys, 'j1', NOW - 1)
    expect(await promote(keys, ['j1'])).toBe(1)
    expect(await promote(keys, ['j1', 'never-there'])).toBe(0)
    expect(await redis.xlen(keys.streams[1])).toBe(1)
    expect(await redis.xlen(keys.dead)).toBe(0)
  })

  test('an unknown priority goes to the normal stream; missing attempts and recipients are written as 0 and empty', async () => {
    const keys = await queue()
    await delayed(keys, 'j1', NOW - 1, { priority: 'urgent' })
    await redis.hdel(keys.status('j1'), 'attempts', 'rcpt')
    expect(await promote(keys, ['j1'])).toBe(1)
    expect((await entries(keys.streams[1]))[0]?.fields).toMatchObject({ a: '0', r: '' })
  })

  test.each(['sent', 'dead', 'cancelled', 'suppressed'])(
    'a %s job leaves the delayed set and is not sent',
    async (final) => {
      const keys = await queue()
      await delayed(keys, 'j1', NOW - 1, { status: final })
      expect(await promote(keys, ['j1'])).toBe(0)
      expect(await redis.zcard(keys.delayed)).toBe(0)
      for (const stream of keys.streams) expect(await redis.xlen(stream)).toBe(0)
      expect(await redis.xlen(keys.dead)).toBe(0)
      expect(await redis.hget(keys.status('j1'), 'status')).toBe(final)
    },
  )

  test('a due job with no status hash is dead-lettered', async () => {
    const keys = await queue()
    await redis.zadd(keys.delayed, NOW - 1, 'ghost')
    expect(await promote(keys, ['ghost'])).toBe(0)
    expect(await redis.zcard(keys.delayed)).toBe(0)
    expect((await entries(keys.dead)).map((e) => e.fields)).toEqual([
      { id: 'ghost', error: 'scheduled job has no data', attempts: '0', time: String(NOW) },
    ])
    expect(await redis.exists(keys.status('ghost'))).toBe(0)
  })

  test('a due job whose payload is gone is dead-lettered', async () => {
    const keys = await queue()
    await delayed(keys, 'j1', NOW - 1)
    await redis.hdel(keys.status('j1'), 'job')
    expect(await promote(keys, ['j1'])).toBe(0)
    expect(await redis.zcard(keys.delayed)).toBe(0)
    expect((await entries(keys.dead))[0]?.fields).toMatchObject({ id: 'j1', error: 'scheduled job has no data' })
  })

  test('a due job whose payload is gone is marked dead in its status hash', async () => {
    const keys = await queue()
    await delayed(keys, 'j1', NOW - 1)
    await redis.hdel(keys.status('j1'), 'job')
    await promote(keys, ['j1'])
    expect(await redis.hget(keys.status('j1'), 'status')).toBe('dead')
    expect(await redis.hget(keys.status('j1'), 'dueAt')).toBeNull()
    // The letter keeps the attempts the job had used.
    expect((await entries(keys.dead))[0]?.fields).toMatchObject({ id: 'j1', attempts: '1' })
  })
})
