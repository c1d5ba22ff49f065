import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, run, queue, pending } = createScriptTestbed()

type Row = [number, string, string, string, string, string, string, string]

/** The flat reply cut into one row of eight values per entry. */
async function fetch(keys: QueueKeys, count: number, consumer = 'c1'): Promise<Row[]> {
  const flat = await run<(string | number)[]>('fetch', [...keys.streams, keys.suppressed], [GROUP, consumer, count])
  const rows: Row[] = []
  for (let i = 0; i < flat.length; i += 8) rows.push(flat.slice(i, i + 8) as Row)
  return rows
}

const add = (stream: string, ...fields: string[]) => redis.xadd(stream, '*', ...fields) as Promise<string>

describe('lua/fetch', () => {
  test('reads high before normal before low, with every field of each entry', async () => {
    const keys = await queue()
    const low = await add(keys.streams[2], 'id', 'l', 'job', '{"l":1}', 'r', 'l@x.com')
    const normal = await add(keys.streams[1], 'id', 'n', 'job', '{"n":1}', 'r', 'n@x.com', 'a', '2', 't', '3')
    const high = await add(keys.streams[0], 'id', 'h', 'job', '{"h":1}', 'r', 'h@x.com,i@x.com')
    expect(await fetch(keys, 10)).toEqual([
      [1, high, 'h', '{"h":1}', '0', 'h@x.com,i@x.com', '', '0'],
      [2, normal, 'n', '{"n":1}', '2', 'n@x.com', '', '3'],
      [3, low, 'l', '{"l":1}', '0', 'l@x.com', '', '0'],
    ])
  })

  test('never more than the count in all; the rest comes on the next call, and nothing twice', async () => {
    const keys = await queue()
    for (let i = 0; i < 3; i++) await add(keys.streams[0], 'id', `h${i}`)
    for (let i = 0; i < 2; i++) await add(keys.streams[1], 'id', `n${i}`)
    await add(keys.streams[2], 'id', 'l0')
    const ids = async (count: number) => (await fetch(keys, count)).map((row) => row[2])
    expect(await ids(4)).toEqual(['h0', 'h1', 'h2', 'n0'])
    expect(await ids(4)).toEqual(['n1', 'l0'])
    expect(await ids(4)).toEqual([])
  })

  test('entries read are pending for this consumer, once delivered', async () => {
    const keys = await queue()
    const id = await add(keys.streams[1], 'id', 'j1', 'job', '{}')
    await fetch(keys, 5, 'worker-a')
    expect(await pending(keys.streams[1])).toEqual([
      { id, consumer: 'worker-a', idleMs: expect.any(Number), deliveries: 1 },
    ])
    expect(await fetch(keys, 5, 'worker-b')).toEqual([])
  })

  test('lists the suppressed recipients of each entry', async () => {
    const keys = await queue()
    await redis.hset(keys.suppressed, 'b@x.com', 'bounce', 'c@x.com', 'complaint')
    await add(keys.streams[1], 'id', 'j1', 'job', '{}', 'r', 'a@x.com,b@x.com,c@x.com')
    await add(keys.streams[1], 'id', 'j2', 'job', '{}', 'r', 'a@x.com')
    expect((await fetch(keys, 5)).map((row) => [row[2], row[6]])).toEqual([
      ['j1', 'b@x.com,c@x.com'],
      ['j2', ''],
    ])
  })

  test("missing fields come back as '' (attempts as '0')", async () => {
    const keys = await queue()
    const id = await add(keys.streams[2], 'other', 'x')
    expect(await fetch(keys, 1)).toEqual([[3, id, '', '', '0', '', '', '0']])
  })

  test('a count of 0 reads nothing', async () => {
    const keys = await queue()
    await add(keys.streams[0], 'id', 'h')
    expect(await fetch(keys, 0)).toEqual([])
    expect(await pending(keys.streams[0])).toEqual([])
  })
})
