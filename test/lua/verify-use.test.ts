import { describe, expect, test } from 'vitest'
import { uniquePrefix } from '../helpers/redis.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run } = createScriptTestbed()

const use = (key: string, hash: string) => run<number>('verifyUse', [key], [hash])

async function issued() {
  const key = uniquePrefix('code')
  await redis.hset(key, 'hash', 'h1', 'attempts', 1, 'expiresAt', Date.now() + 600_000)
  await redis.pexpire(key, 600_000)
  return key
}

describe('lua/verify-use', () => {
  test('the matching hash uses the code once: the hash is gone and used is set, the TTL kept', async () => {
    const key = await issued()
    expect(await use(key, 'h1')).toBe(1)
    expect(await redis.hgetall(key)).toMatchObject({ used: '1', attempts: '1' })
    expect(await redis.hexists(key, 'hash')).toBe(0)
    expect(await redis.pttl(key)).toBeGreaterThan(590_000)
    expect(await use(key, 'h1')).toBe(0)
  })

  test('of concurrent uses with the right hash exactly one wins', async () => {
    const key = await issued()
    const replies = await Promise.all(Array.from({ length: 10 }, () => use(key, 'h1')))
    expect(replies.filter((reply) => reply === 1)).toHaveLength(1)
  })

  test('a hash that no longer matches (the code was replaced) uses nothing', async () => {
    const key = await issued()
    await redis.hset(key, 'hash', 'h2')
    expect(await use(key, 'h1')).toBe(0)
    expect(await redis.hgetall(key)).toMatchObject({ hash: 'h2' })
    expect(await redis.hexists(key, 'used')).toBe(0)
  })

  test('a code that expired and is gone: 0, and the key is not created', async () => {
    const key = uniquePrefix('code')
    expect(await use(key, 'h1')).toBe(0)
    expect(await redis.exists(key)).toBe(0)
  })
})
