import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, run, queue, pending, deliver } = createScriptTestbed()

const keep = (keys: QueueKeys, consumer: string, pairs: (string | number)[]) =>
  run<number>('keep', [...keys.streams], [GROUP, consumer, ...pairs])

/** Makes an entry look idle for a long time, as one left alone while a worker waits. */
const age = (stream: string, consumer: string, entryId: string) =>
  redis.xclaim(stream, GROUP, consumer, 0, entryId, 'IDLE', 600_000, 'JUSTID')

describe('lua/keep', () => {
  test("resets the idle time of this consumer's entries without counting a delivery", async () => {
    const keys = await queue()
    const high = await deliver(keys.streams[0], { id: 'h' }, 'me')
    const low = await deliver(keys.streams[2], { id: 'l' }, 'me')
    await age(keys.streams[0], 'me', high)
    await age(keys.streams[2], 'me', low)
    expect(await keep(keys, 'me', [1, high, 3, low])).toBe(2)
    for (const stream of [keys.streams[0], keys.streams[2]]) {
      const [entry] = await pending(stream)
      expect(entry?.consumer).toBe('me')
      expect(entry?.idleMs).toBeLessThan(1000)
      expect(entry?.deliveries).toBe(1)
    }
  })

  test('leaves alone an entry another consumer owns by now, and one no longer pending', async () => {
    const keys = await queue()
    const theirs = await deliver(keys.streams[1], { id: 'a' }, 'other')
    await age(keys.streams[1], 'other', theirs)
    const acked = await deliver(keys.streams[1], { id: 'b' }, 'me')
    await redis.xack(keys.streams[1], GROUP, acked)
    expect(await keep(keys, 'me', [2, theirs, 2, acked])).toBe(0)
    const rows = await pending(keys.streams[1])
    expect(rows).toEqual([{ id: theirs, consumer: 'other', idleMs: expect.any(Number), deliveries: 1 }])
    expect(rows[0]?.idleMs).toBeGreaterThanOrEqual(600_000)
  })

  test('an empty list keeps nothing', async () => {
    const keys = await queue()
    expect(await keep(keys, 'me', [])).toBe(0)
  })
})
