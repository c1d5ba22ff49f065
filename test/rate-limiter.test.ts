import { ReplyError } from 'ioredis'
import { describe, expect, test } from 'vitest'
import { createRateLimiter, MailstreamError } from '../src/index.js'
import { defineScripts } from '../src/lua/index.js'
import { rollingQuota } from '../src/rate-limiter.js'
import { connect, uniquePrefix } from './helpers/redis.js'

const redis = connect()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('createRateLimiter: GCRA', () => {
  test('a full bucket gives burst units at once, then one per emission interval', async () => {
    const limiter = createRateLimiter({ redis })
    const key = uniquePrefix('gcra')
    const options = { rate: 10, periodMs: 1000, burst: 5 }
    const results = []
    for (let i = 0; i < 6; i++) results.push(await limiter.consume(key, options))
    expect(results.map((result) => result.allowed)).toEqual([true, true, true, true, true, false])
    expect(results.map((result) => result.remaining)).toEqual([4, 3, 2, 1, 0, 0])
    const refused = results[5] as (typeof results)[number]
    // One unit comes back every 100 ms; the bucket is full again 500 ms after it was emptied.
    expect(refused.retryAfterMs).toBeGreaterThan(50)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(100)
    expect(refused.resetAfterMs).toBeGreaterThan(450)
    expect(refused.resetAfterMs).toBeLessThanOrEqual(500)

    await sleep(refused.retryAfterMs)
    expect((await limiter.consume(key, options)).allowed).toBe(true)
    expect((await limiter.consume(key, options)).allowed).toBe(false)
  })

  test('state is one string at rate:limit:<key> that expires when the bucket is full again', async () => {
    const limiter = createRateLimiter({ redis })
    const key = uniquePrefix('gcra')
    const { resetAfterMs } = await limiter.consume(key, { rate: 2, periodMs: 1000, burst: 2 })
    expect(await redis.type(`rate:limit:${key}`)).toBe('string')
    const ttl = await redis.pttl(`rate:limit:${key}`)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(resetAfterMs + 1)
    await limiter.reset(key)
    expect(await redis.exists(`rate:limit:${key}`)).toBe(0)

    const custom = createRateLimiter({ redis, prefix: 'myapp:rl' })
    await custom.consume(key, { rate: 1 })
    expect(await redis.exists(`myapp:rl:${key}`)).toBe(1)
  })

  test('cost is weighted; a refused call takes nothing', async () => {
    const limiter = createRateLimiter({ redis })
    const key = uniquePrefix('gcra')
    const options = { rate: 10, periodMs: 1000, burst: 5 }
    expect(await limiter.consume(key, { ...options, cost: 3 })).toMatchObject({ allowed: true, remaining: 2 })
    const refused = await limiter.consume(key, { ...options, cost: 3 })
    expect(refused).toMatchObject({ allowed: false, remaining: 2 })
    // One more unit is needed: 100 ms.
    expect(refused.retryAfterMs).toBeGreaterThan(50)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(100)
    expect(await limiter.consume(key, { ...options, cost: 2 })).toMatchObject({ allowed: true, remaining: 0 })
    expect((await limiter.peek(key, options)).remaining).toBe(0)
  })

  test('a cost above burst is allowed only from a full bucket, and the calls after it pay the excess', async () => {
    const limiter = createRateLimiter({ redis })
    const key = uniquePrefix('gcra')
    const options = { rate: 10, periodMs: 1000, burst: 5 }
    expect((await limiter.consume(key, { ...options, cost: 1 })).allowed).toBe(true)
    // Not full: refused until the bucket is full again (about 100 ms).
    const notFull = await limiter.consume(key, { ...options, cost: 8 })
    expect(notFull.allowed).toBe(false)
    expect(notFull.retryAfterMs).toBeGreaterThan(50)
    expect(notFull.retryAfterMs).toBeLessThanOrEqual(100)
    await sleep(notFull.retryAfterMs)
    const big = await limiter.consume(key, { ...options, cost: 8 })
    expect(big).toMatchObject({ allowed: true, remaining: 0 })
    // 8 units taken from a bucket of 5: the next unit is free after (8 - 5 + 1) * 100 ms.
    const next = await limiter.consume(key, options)
    expect(next.allowed).toBe(false)
    expect(next.retryAfterMs).toBeGreaterThan(350)
    expect(next.retryAfterMs).toBeLessThanOrEqual(400)
  })

  test('shared by every client: limits across connections add up to one budget', async () => {
    const key = uniquePrefix('gcra')
    const limiters = [createRateLimiter({ redis }), createRateLimiter({ redis: connect() })]
    const options = { rate: 5, periodMs: 60_000, burst: 5 }
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (limiters[i % 2] as (typeof limiters)[number]).consume(key, options)),
    )
    expect(results.filter((result) => result.allowed)).toHaveLength(5)
  })

  test('no edge burst: demand around a wall-clock second boundary gets burst plus the refill, unlike a fixed window', async () => {
    const limiter = createRateLimiter({ redis })
    const key = uniquePrefix('gcra')
    const rate = 10
    const options = { rate, periodMs: 1000, burst: rate }
    // A fixed-window counter (INCR on one key per wall-clock second) for comparison.
    const fixedPrefix = uniquePrefix('fixed')
    const fixedWindow = async () => {
      const now = Date.now()
      const windowKey = `${fixedPrefix}:${Math.floor(now / 1000)}`
      const count = await redis.incr(windowKey)
      if (count === 1) await redis.pexpire(windowKey, 2000)
      return count <= rate
    }
    // Start 150 ms before the next second, and ask as fast as possible for 300 ms.
    await sleep((1850 - (Date.now() % 1000)) % 1000)
    const start = Date.now()
    let gcraAllowed = 0
    let fixedAllowed = 0
    while (Date.now() - start < 300) {
      if ((await limiter.consume(key, options)).allowed) gcraAllowed++
      if (await fixedWindow()) fixedAllowed++
    }
    // The fixed window lets a full window through on each side of the edge.
    expect(fixedAllowed).toBe(2 * rate)
    // GCRA: the burst plus 300 ms of refill (3 units), never a second burst.
    expect(gcraAllowed).toBeGreaterThanOrEqual(rate)
    expect(gcraAllowed).toBeLessThanOrEqual(rate + 3)
  })

  test('a Redis error leaves as E_REDIS with the Redis reply as cause', async () => {
    const limiter = createRateLimiter({ redis })
    const key = uniquePrefix('gcra')
    // A key of the wrong type makes the GCRA script fail inside Redis.
    await redis.hset(`rate:limit:${key}`, 'field', '1')
    const error = await limiter.consume(key, { rate: 1 }).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_REDIS', message: expect.stringMatching(/consume: .*WRONGTYPE/) })
    expect((error as MailstreamError).cause).toBeInstanceOf(ReplyError)
    await limiter.reset(key)
  })

  test('bad input is E_VALIDATION naming the field; bad options are E_CONFIG', async () => {
    const limiter = createRateLimiter({ redis })
    await expect(limiter.consume('k', { rate: 0 })).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'rate' })
    await expect(limiter.consume('k', { rate: 1, burst: 0 })).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'burst',
    })
    await expect(limiter.consume('k', { rate: 1, cost: -1 })).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'cost',
    })
    await expect(limiter.consume('has space', { rate: 1 })).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'key',
    })
    expect(() => createRateLimiter({ redis, prefix: '' })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'prefix' }),
    )
    expect(() => createRateLimiter({ redis, commandTimeoutMs: 9 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'commandTimeoutMs' }),
    )
    expect(() => createRateLimiter({ redis, onError: {} as never })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'onError' }),
    )
    await limiter.close()
    await expect(limiter.consume('k', { rate: 1 })).rejects.toMatchObject({ code: 'E_CLOSED' })
    expect(await redis.ping()).toBe('PONG') // a client it was given stays open
  })
})

describe('rolling quota (lua/quota.lua)', () => {
  test('counts units exactly over a rolling window, refuses what does not fit, frees it as buckets leave', async () => {
    defineScripts(redis)
    const key = `rate:limit:${uniquePrefix('quota')}:daily`
    const quota = (cost: number) => rollingQuota(redis, key, { max: 5, windowMs: 1000, bucketMs: 100, cost })
    expect(await quota(2)).toMatchObject({ allowed: true, remaining: 3, used: 2 })
    await sleep(300)
    expect(await quota(2)).toMatchObject({ allowed: true, remaining: 1, used: 4 })
    const refused = await quota(2)
    expect(refused).toMatchObject({ allowed: false, remaining: 1, used: 4 })
    // Room for 2 comes back when the first bucket leaves: about 700 ms from now, at most one bucket later.
    expect(refused.retryAfterMs).toBeGreaterThan(550)
    expect(refused.retryAfterMs).toBeLessThanOrEqual(800)
    expect(await quota(1)).toMatchObject({ allowed: true, remaining: 0, used: 5 })
    const full = await quota(0)
    expect(full).toMatchObject({ allowed: true, remaining: 0 })
    expect(full.retryAfterMs).toBeGreaterThan(0)

    await sleep(full.retryAfterMs)
    expect(await quota(2)).toMatchObject({ allowed: true, used: 5 })
    // Once every bucket has left the window the hash is gone.
    await sleep(1200)
    expect(await redis.exists(key)).toBe(0)
    // A cost above max goes into an empty window only.
    expect(await quota(7)).toMatchObject({ allowed: true, used: 7 })
    expect(await quota(1)).toMatchObject({ allowed: false })
  })
})
