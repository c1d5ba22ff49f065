import { describe, expect, test } from 'vitest'
import { uniquePrefix } from '../helpers/redis.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run } = createScriptTestbed()

type Reply = [state: string, hash: string, attempts: number]

const attempt = (key: string, maxAttempts = 3) => run<Reply>('verifyAttempt', [key], [maxAttempts])

async function issued(fields: Record<string, string | number> = {}) {
  const key = uniquePrefix('code')
  await redis.hset(key, { hash: 'h1', attempts: 0, expiresAt: Date.now() + 600_000, ...fields })
  return key
}

describe('lua/verify-attempt', () => {
  test("'ok' counts the attempt before the compare and gives the stored hash", async () => {
    const key = await issued()
    expect(await attempt(key)).toEqual(['ok', 'h1', 1])
    expect(await attempt(key)).toEqual(['ok', 'h1', 2])
    expect(await redis.hget(key, 'attempts')).toBe('2')
  })

  test("'locked' once max attempts are counted; the count stops there", async () => {
    const key = await issued()
    for (let i = 1; i <= 3; i++) expect(await attempt(key, 3)).toEqual(['ok', 'h1', i])
    expect(await attempt(key, 3)).toEqual(['locked', '', 3])
    expect(await attempt(key, 3)).toEqual(['locked', '', 3])
    expect(await redis.hget(key, 'attempts')).toBe('3')
  })

  test("'missing' when no code was issued; nothing is created", async () => {
    const key = uniquePrefix('code')
    expect(await attempt(key)).toEqual(['missing', '', 0])
    expect(await redis.exists(key)).toBe(0)
  })

  test("'expired' once expiresAt has passed, even while the key is still there; not counted", async () => {
    const key = await issued({ expiresAt: Date.now() - 1000 })
    expect(await attempt(key)).toEqual(['expired', '', 0])
    expect(await redis.hget(key, 'attempts')).toBe('0')
  })

  test("'used' after the code was used, whatever else is left", async () => {
    const key = await issued({ used: '1' })
    await redis.hdel(key, 'hash')
    expect(await attempt(key)).toEqual(['used', '', 0])
    expect(await redis.hget(key, 'attempts')).toBe('0')
  })

  test('the key keeps its TTL when an attempt is counted', async () => {
    const key = await issued()
    await redis.pexpire(key, 600_000)
    await attempt(key)
    expect(await redis.pttl(key)).toBeGreaterThan(590_000)
  })
})
