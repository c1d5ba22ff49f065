import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import source from '../../src/lua/leave.lua'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, queue, deliver } = createScriptTestbed()

const leave = (keys: QueueKeys, consumer: string) =>
  redis.eval(source, 3, ...keys.streams, GROUP, consumer) as Promise<number>

async function consumersOf(stream: string): Promise<string[]> {
  const rows = (await redis.xinfo('CONSUMERS', stream, GROUP)) as string[][]
  return rows.map((row) => row[row.indexOf('name') + 1] as string).sort()
}

describe('lua/leave', () => {
  test('removes a consumer that holds nothing from every stream, and leaves the others', async () => {
    const keys = await queue()
    for (const stream of keys.streams) {
      await redis.xgroup('CREATECONSUMER', stream, GROUP, 'me')
      await redis.xgroup('CREATECONSUMER', stream, GROUP, 'other')
    }
    await deliver(keys.streams[1], { id: 'theirs' }, 'other')
    expect(await leave(keys, 'me')).toBe(1)
    for (const stream of keys.streams) expect(await consumersOf(stream)).toEqual(['other'])
    expect(((await redis.xpending(keys.streams[1], GROUP)) as unknown[])[0]).toBe(1)
  })

  test('a consumer holding an entry on any stream stays on every stream, its entry still pending', async () => {
    const keys = await queue()
    for (const stream of keys.streams) await redis.xgroup('CREATECONSUMER', stream, GROUP, 'me')
    const held = await deliver(keys.streams[2], { id: 'held' }, 'me')
    expect(await leave(keys, 'me')).toBe(0)
    for (const stream of keys.streams) expect(await consumersOf(stream)).toEqual(['me'])
    const [row] = (await redis.xpending(keys.streams[2], GROUP, '-', '+', 10)) as [string, string][]
    expect(row?.slice(0, 2)).toEqual([held, 'me'])
  })

  test('streams or groups that do not exist hold nothing', async () => {
    const keys = await queue()
    await redis.del(keys.streams[0])
    expect(await leave(keys, 'nobody')).toBe(1)
  })
})
