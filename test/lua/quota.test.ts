import { describe, expect, test } from 'vitest'
import { uniquePrefix } from '../helpers/redis.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, serverNow } = createScriptTestbed()

type Reply = [allowed: number, remaining: number, retryAfterMs: number, used: number]

const WINDOW = 60_000
const WIDTH = 1000

const quota = (key: string, max: number, cost: number, window = WINDOW, width = WIDTH) =>
  run<Reply>('quota', [key], [max, window, width, cost])

describe('lua/quota', () => {
  test('units are counted until the max; a cost that does not fit is refused and adds nothing', async () => {
    const key = uniquePrefix('quota')
    expect(await quota(key, 3, 2)).toEqual([1, 1, 0, 2])
    const refused = await quota(key, 3, 2)
    expect(refused.slice(0, 2)).toEqual([0, 1])
    expect(refused[3]).toBe(2)
    // The first units leave one bucket after a full window.
    expect(refused[2]).toBeGreaterThan(WINDOW - 1000)
    expect(refused[2]).toBeLessThanOrEqual(WINDOW + WIDTH)
    expect(await quota(key, 3, 1)).toEqual([1, 0, 0, 3])
    expect(await redis.hget(key, 't')).toBe('3')
  })

  test('the hash holds the total, the oldest and newest bucket, and expires a window after its newest bucket', async () => {
    const key = uniquePrefix('quota')
    const before = await serverNow()
    await quota(key, 10, 4)
    const hash = await redis.hgetall(key)
    const bucket = Math.floor(before / WIDTH)
    expect([bucket, bucket + 1].map(String)).toContain(hash.o)
    expect(hash).toEqual({ t: '4', o: hash.o, n: hash.o, [hash.o as string]: '4' })
    const ttl = await redis.pttl(key)
    expect(ttl).toBeGreaterThan(WINDOW - 1000)
    expect(ttl).toBeLessThanOrEqual(WINDOW + WIDTH)
  })

  test('cost 0 only looks: always allowed, nothing written; retryAfterMs once the quota is used up', async () => {
    const key = uniquePrefix('quota')
    expect(await quota(key, 2, 0)).toEqual([1, 2, 0, 0])
    expect(await redis.exists(key)).toBe(0)
    await quota(key, 2, 2)
    const full = await quota(key, 2, 0)
    expect(full.slice(0, 2)).toEqual([1, 0])
    expect(full[2]).toBeGreaterThan(WINDOW - 1000)
    expect(full[3]).toBe(2)
    expect(await redis.hget(key, 't')).toBe('2')
  })

  test('a cost above max goes only into an empty window', async () => {
    const key = uniquePrefix('quota')
    expect(await quota(key, 3, 5)).toEqual([1, 0, 0, 5])
    const refused = await quota(key, 3, 1)
    expect(refused.slice(0, 2)).toEqual([0, 0])
    expect(refused[3]).toBe(5)
    expect(refused[2]).toBeGreaterThan(WINDOW - 1000)

    const other = uniquePrefix('quota')
    await quota(other, 3, 1)
    const large = await quota(other, 3, 5)
    expect(large[0]).toBe(0)
    expect(large[3]).toBe(1)
  })

  test('non-empty buckets are linked oldest to newest', async () => {
    const key = uniquePrefix('quota')
    await quota(key, 10, 1, 10_000, 20)
    await new Promise((resolve) => setTimeout(resolve, 45))
    await quota(key, 10, 2, 10_000, 20)
    const hash = await redis.hgetall(key)
    expect(hash.t).toBe('3')
    expect(Number(hash.n)).toBeGreaterThan(Number(hash.o))
    expect(hash[`x${hash.o}`]).toBe(hash.n)
    expect(hash[hash.o as string]).toBe('1')
    expect(hash[hash.n as string]).toBe('2')
  })

  test('buckets a full window old are dropped, however many, and room comes back', async () => {
    const key = uniquePrefix('quota')
    const current = Math.floor((await serverNow()) / WIDTH)
    const [old1, old2, live] = [current - 500, current - 200, current - 2]
    await redis.hset(key, {
      t: 6,
      o: old1,
      n: live,
      [old1]: 2,
      [`x${old1}`]: old2,
      [old2]: 1,
      [`x${old2}`]: live,
      [live]: 3,
    })
    expect(await quota(key, 5, 0)).toEqual([1, 2, 0, 3])
    expect(await redis.hgetall(key)).toEqual({ t: '3', o: String(live), n: String(live), [live]: '3' })
    // The retry time walks from the oldest live bucket: it leaves a window after its end.
    const refused = await quota(key, 5, 3)
    expect(refused[0]).toBe(0)
    const leaves = (live + 1) * WIDTH + WINDOW - (await serverNow())
    expect(Math.abs((refused[2] as number) - leaves)).toBeLessThan(1000)
  })

  test('when every bucket is a window old the hash is deleted', async () => {
    const key = uniquePrefix('quota')
    const current = Math.floor((await serverNow()) / WIDTH)
    await redis.hset(key, { t: 4, o: current - 100, n: current - 100, [current - 100]: 4 })
    expect(await quota(key, 4, 0)).toEqual([1, 4, 0, 0])
    expect(await redis.exists(key)).toBe(0)
  })
})
