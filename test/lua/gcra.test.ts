import { describe, expect, test } from 'vitest'
import { uniquePrefix } from '../helpers/redis.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, serverNow } = createScriptTestbed()

type Reply = [
  allowed: number,
  remaining: number,
  retryAfterMs: number,
  resetAfterMs: number,
  waitMs: number,
  soon: number,
]

// One unit per second, so that the few ms between two calls change no whole unit.
const INTERVAL = 1000

const gcra = (key: string, burst: number, cost: number, mode: 'take' | 'reserve' = 'take', lookahead = 0) =>
  run<Reply>('gcra', [key], [INTERVAL, burst, cost, mode, lookahead])

/** `actual` is `expected` ms, less the few ms that passed since. */
const about = (actual: number | undefined, expected: number) => {
  expect(actual).toBeLessThanOrEqual(expected)
  expect(actual).toBeGreaterThan(expected - 500)
}

describe('lua/gcra', () => {
  test("'take' from a full bucket: burst units at once, then refused with when one is back", async () => {
    const key = uniquePrefix('gcra')
    const replies: Reply[] = []
    for (let i = 0; i < 4; i++) replies.push(await gcra(key, 3, 1))
    expect(replies.map(([allowed, remaining, , , wait]) => [allowed, remaining, wait])).toEqual([
      [1, 2, 0],
      [1, 1, 0],
      [1, 0, 0],
      [0, 0, 0],
    ])
    expect(replies.slice(0, 3).map((reply) => reply[2])).toEqual([0, 0, 0])
    about(replies[0]?.[3], 1000)
    about(replies[2]?.[3], 3000)
    const refused = replies[3] as Reply
    about(refused[2], 1000)
    about(refused[3], 3000)
  })

  test('the state is the TAT as one string, expiring when the bucket is full again; a refusal changes nothing', async () => {
    const key = uniquePrefix('gcra')
    const before = await serverNow()
    await gcra(key, 2, 2)
    const tat = Number(await redis.get(key))
    expect(tat).toBeGreaterThanOrEqual(before + 2000)
    expect(tat).toBeLessThan(before + 2500)
    const ttl = await redis.pttl(key)
    expect(ttl).toBeGreaterThan(1500)
    expect(ttl).toBeLessThanOrEqual(2001)
    expect((await gcra(key, 2, 1))[0]).toBe(0)
    expect(Number(await redis.get(key))).toBe(tat)
  })

  test('a weighted cost: refused while it does not fit, with when all of it would', async () => {
    const key = uniquePrefix('gcra')
    expect((await gcra(key, 5, 3)).slice(0, 2)).toEqual([1, 2])
    const refused = await gcra(key, 5, 3)
    expect(refused.slice(0, 2)).toEqual([0, 2])
    about(refused[2], 1000)
    expect((await gcra(key, 5, 2)).slice(0, 2)).toEqual([1, 0])
  })

  test("'take' of a cost above burst: only from a full bucket, which it runs into debt", async () => {
    const key = uniquePrefix('gcra')
    const [allowed, remaining, retryAfter, reset] = await gcra(key, 3, 5)
    expect([allowed, remaining, retryAfter]).toEqual([1, 0, 0])
    about(reset, 5000)
    // In debt: one unit fits once the TAT is within the burst again, 2 s from now.
    const one = await gcra(key, 3, 1)
    expect(one.slice(0, 2)).toEqual([0, 0])
    about(one[2], 3000)
    // Another large cost waits for the bucket to be full.
    const large = await gcra(key, 3, 4)
    expect(large[0]).toBe(0)
    about(large[2], 5000)
  })

  test('cost 0 only looks: nothing is written; retryAfterMs says when one unit is free', async () => {
    const key = uniquePrefix('gcra')
    expect(await gcra(key, 2, 0)).toEqual([1, 2, 0, 0, 0, 2])
    expect(await redis.exists(key)).toBe(0)
    await gcra(key, 2, 2)
    const tat = await redis.get(key)
    const look = await gcra(key, 2, 0)
    expect(look.slice(0, 2)).toEqual([1, 0])
    about(look[2], 1000)
    expect(await redis.get(key)).toBe(tat)
  })

  test("'reserve' always takes; waitMs says when the units may be used, and a negative cost gives them back", async () => {
    const key = uniquePrefix('gcra')
    expect((await gcra(key, 1, 1, 'reserve')).slice(0, 2)).toEqual([1, 0])
    const second = await gcra(key, 1, 1, 'reserve')
    expect(second[0]).toBe(1)
    about(second[4], 1000)
    const third = await gcra(key, 1, 1, 'reserve')
    about(third[4], 2000)
    about(third[3], 3000)

    const back = await gcra(key, 1, -2, 'reserve')
    expect(back[0]).toBe(1)
    about(back[3], 1000)
    const next = await gcra(key, 1, 1, 'reserve')
    about(next[4], 1000)
  })

  test("'reserve' of a cost above burst waits for a full bucket, not for the cost to fit", async () => {
    const key = uniquePrefix('gcra')
    await gcra(key, 2, 1)
    const reply = await gcra(key, 2, 4, 'reserve')
    expect(reply[0]).toBe(1)
    about(reply[4], 1000)
    about(reply[3], 5000)
  })

  test('soon counts the units free within the lookahead', async () => {
    const key = uniquePrefix('gcra')
    await gcra(key, 4, 4)
    expect((await gcra(key, 4, 0, 'take', 0))[5]).toBe(0)
    expect((await gcra(key, 4, 0, 'take', 2500))[5]).toBe(2)
    expect((await gcra(key, 4, 0, 'take', 60_000))[5]).toBe(4)
  })
})
