import { describe, expect, test } from 'vitest'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, run, queue, pending, deliver } = createScriptTestbed()
const MIN_IDLE = 60_000

const reclaim = (stream: string, consumer: string, cursor: string, count: number) =>
  run<(string | number)[]>('reclaim', [stream], [GROUP, consumer, MIN_IDLE, cursor, count])

/** An entry delivered to `consumer` `deliveries` times and idle for `idleMs`. */
async function stalled(stream: string, consumer: string, jobId: string, deliveries = 1, idleMs = 120_000) {
  const id = await deliver(stream, { id: jobId, job: `{"id":"${jobId}"}`, r: `${jobId}@x.com` }, consumer)
  await redis.xclaim(stream, GROUP, consumer, 0, id, 'IDLE', idleMs, 'RETRYCOUNT', deliveries, 'JUSTID')
  return id
}

describe('lua/reclaim', () => {
  test("claims other consumers' stalled entries with their fields and the delivery XCLAIM counts", async () => {
    const keys = await queue()
    const stream = keys.streams[1]
    const a = await stalled(stream, 'dead-worker', 'j1', 1)
    const b = await stalled(stream, 'dead-worker', 'j2', 4)
    expect(await reclaim(stream, 'me', '-', 10)).toEqual([
      '-',
      a,
      'j1',
      '{"id":"j1"}',
      'j1@x.com',
      2,
      b,
      'j2',
      '{"id":"j2"}',
      'j2@x.com',
      5,
    ])
    expect((await pending(stream)).map((p) => [p.id, p.consumer, p.deliveries])).toEqual([
      [a, 'me', 2],
      [b, 'me', 5],
    ])
  })

  test('entries idle for less than the minimum stay with their consumer', async () => {
    const keys = await queue()
    const stream = keys.streams[0]
    const busy = await stalled(stream, 'other', 'j1', 1, 1000)
    expect(await reclaim(stream, 'me', '-', 10)).toEqual(['-'])
    expect((await pending(stream)).map((p) => [p.id, p.consumer, p.deliveries])).toEqual([[busy, 'other', 1]])
  })

  test('never claims an entry this consumer holds itself', async () => {
    const keys = await queue()
    const stream = keys.streams[2]
    const own = await stalled(stream, 'me', 'mine')
    const theirs = await stalled(stream, 'other', 'theirs')
    const reply = await reclaim(stream, 'me', '-', 10)
    expect(reply.filter((_, i) => i % 5 === 1)).toEqual([theirs])
    const rows = await pending(stream)
    expect(rows.find((p) => p.id === own)).toMatchObject({ consumer: 'me', deliveries: 1 })
    expect(rows.find((p) => p.id === own)?.idleMs).toBeGreaterThanOrEqual(120_000)
  })

  test('pages by cursor: at most count claimed, the cursor names the last entry looked at', async () => {
    const keys = await queue()
    const stream = keys.streams[1]
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push(await stalled(stream, 'other', `j${i}`))
    const first = await reclaim(stream, 'me', '-', 2)
    // Looks at 2 x count entries: claims the first two, and the cursor is the fourth.
    expect(first[0]).toBe(ids[3])
    expect(first.filter((_, i) => i % 5 === 1)).toEqual(ids.slice(0, 2))
    const second = await reclaim(stream, 'me', first[0] as string, 2)
    expect(second[0]).toBe('-')
    expect(second.filter((_, i) => i % 5 === 1)).toEqual([ids[4]])
    // ids[2] and ids[3] were looked at but not claimed: a fresh pass from '-' takes them.
    const third = await reclaim(stream, 'me', '-', 2)
    expect(third.filter((_, i) => i % 5 === 1)).toEqual([ids[2], ids[3]])
  })

  test('a pending entry deleted from the stream is dropped from the pending list, not returned', async () => {
    const keys = await queue()
    const stream = keys.streams[1]
    const deleted = await stalled(stream, 'other', 'gone')
    const kept = await stalled(stream, 'other', 'kept')
    await redis.xdel(stream, deleted)
    const reply = await reclaim(stream, 'me', '-', 10)
    expect(reply.filter((_, i) => i % 5 === 1)).toEqual([kept])
    expect((await pending(stream)).map((p) => p.id)).toEqual([kept])
  })
})
