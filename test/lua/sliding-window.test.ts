import { describe, expect, test } from 'vitest'
import { uniquePrefix } from '../helpers/redis.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, serverNow } = createScriptTestbed()

type Reply = [allowed: number, remaining: number, retryAfterMs: number]
const WINDOW = 60_000

const hit = (key: string, max: number, member: string, window = WINDOW) =>
  run<Reply>('slidingWindow', [key], [max, window, member])

describe('lua/sliding-window', () => {
  test('allows max events, each a member scored by server time; the next is refused and not added', async () => {
    const key = uniquePrefix('sw')
    const before = await serverNow()
    expect(await hit(key, 3, 'e1')).toEqual([1, 2, 0])
    expect(await hit(key, 3, 'e2')).toEqual([1, 1, 0])
    expect(await hit(key, 3, 'e3')).toEqual([1, 0, 0])
    const refused = await hit(key, 3, 'e4')
    expect(refused.slice(0, 2)).toEqual([0, 0])
    expect(refused[2]).toBeGreaterThan(WINDOW - 1000)
    expect(refused[2]).toBeLessThanOrEqual(WINDOW)
    const members = await redis.zrange(key, 0, -1, 'WITHSCORES')
    expect(members.filter((_, i) => i % 2 === 0)).toEqual(['e1', 'e2', 'e3'])
    const first = Number(members[1])
    expect(first).toBeGreaterThanOrEqual(Math.floor(before))
    expect(first).toBeLessThan(before + 1000)
  })

  test('the log expires one window after its last event', async () => {
    const key = uniquePrefix('sw')
    await hit(key, 3, 'e1')
    const ttl = await redis.pttl(key)
    expect(ttl).toBeGreaterThan(WINDOW - 1000)
    expect(ttl).toBeLessThanOrEqual(WINDOW + 1)
  })

  test('events older than the window are dropped; retryAfterMs is when the oldest left leaves', async () => {
    const key = uniquePrefix('sw')
    const now = await serverNow()
    await redis.zadd(key, now - WINDOW - 1000, 'ancient', now - 20_000, 'old', now - 10_000, 'recent')
    expect(await hit(key, 3, 'new')).toEqual([1, 0, 0])
    expect(await redis.zrange(key, 0, -1)).toEqual(['old', 'recent', 'new'])
    const refused = await hit(key, 3, 'more')
    expect(refused[0]).toBe(0)
    expect(refused[2]).toBeGreaterThan(40_000 - 1000)
    expect(refused[2]).toBeLessThanOrEqual(40_000)
  })

  test('removing a member undoes its event', async () => {
    const key = uniquePrefix('sw')
    await hit(key, 1, 'e1')
    expect((await hit(key, 1, 'e2'))[0]).toBe(0)
    await redis.zrem(key, 'e1')
    expect(await hit(key, 1, 'e2')).toEqual([1, 0, 0])
  })
})
