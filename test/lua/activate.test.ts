import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, run, queue, entries, pending, deliver } = createScriptTestbed()
const NOW = 1_700_000_000_000

type Verdict = [string, number, string]

/** One entry's six ARGV values, in the header's order. */
const entry = (
  streamIndex: number,
  entryId: string,
  jobId: string,
  deliveries: number,
  payload: boolean,
  rcpt = '',
) => [streamIndex, entryId, jobId, deliveries, payload ? '1' : '0', rcpt]

function activate(keys: QueueKeys, maxDeliveries: number, list: { jobId: string; args: (string | number)[] }[]) {
  return run<Verdict[]>(
    'activate',
    [...keys.streams, keys.dead, keys.suppressed, ...list.map(({ jobId }) => keys.status(jobId))],
    [GROUP, NOW, maxDeliveries, ...list.flatMap(({ args }) => args)],
  )
}

/** A queued job whose entry sits in the normal stream, delivered to c1. */
async function liveJob(keys: QueueKeys, jobId: string, attempts = 0) {
  const entryId = await deliver(keys.streams[1], { id: jobId, job: '{}', r: 'a@x.com,b@x.com' })
  await redis.hset(keys.status(jobId), 'status', 'queued', 'priority', 'normal', 'entry', entryId, 'attempts', attempts)
  return entryId
}

describe('lua/activate', () => {
  test("'send' with the job's attempts and throttles; the entry stays pending and nothing is written", async () => {
    const keys = await queue()
    const entryId = await liveJob(keys, 'j1', 2)
    await redis.hset(keys.status('j1'), 'throttles', 4)
    const before = await redis.hgetall(keys.status('j1'))
    expect(
      await activate(keys, 5, [{ jobId: 'j1', args: entry(2, entryId, 'j1', 1, true, 'a@x.com,b@x.com') }]),
    ).toEqual([['send', 2, '', 4]])
    expect(await redis.hgetall(keys.status('j1'))).toEqual(before)
    expect((await pending(keys.streams[1])).map((p) => p.id)).toEqual([entryId])
    expect(await redis.xlen(keys.dead)).toBe(0)
  })

  test("'send' names only the suppressed recipients, in the entry's order", async () => {
    const keys = await queue()
    const entryId = await liveJob(keys, 'j1')
    await redis.hset(keys.suppressed, 'b@x.com', 'bounce', 'z@x.com', 'complaint')
    const rcpt = 'a@x.com,b@x.com,c@x.com'
    expect(await activate(keys, 5, [{ jobId: 'j1', args: entry(2, entryId, 'j1', 1, true, rcpt) }])).toEqual([
      ['send', 0, 'b@x.com', 0],
    ])
    await redis.hset(keys.suppressed, 'c@x.com', 'bounce')
    expect(await activate(keys, 5, [{ jobId: 'j1', args: entry(2, entryId, 'j1', 1, true, rcpt) }])).toEqual([
      ['send', 0, 'b@x.com,c@x.com', 0],
    ])
  })

  test("'over' only past max deliveries; the entry is left for the caller to dead-letter", async () => {
    const keys = await queue()
    const entryId = await liveJob(keys, 'j1', 1)
    const at = (deliveries: number) =>
      activate(keys, 3, [{ jobId: 'j1', args: entry(2, entryId, 'j1', deliveries, true, 'a@x.com') }])
    expect(await at(3)).toEqual([['send', 1, '', 0]])
    expect(await at(4)).toEqual([['over', 1, '', 0]])
    expect(await redis.xlen(keys.streams[1])).toBe(1)
    expect(await redis.xlen(keys.dead)).toBe(0)
    expect(await redis.hget(keys.status('j1'), 'status')).toBe('queued')
  })

  test.each(['sent', 'dead', 'cancelled', 'suppressed'])(
    "'skip' for a job that is %s: acknowledged and deleted, status untouched",
    async (final) => {
      const keys = await queue()
      const entryId = await liveJob(keys, 'j1', 1)
      await redis.hset(keys.status('j1'), 'status', final)
      expect(await activate(keys, 5, [{ jobId: 'j1', args: entry(2, entryId, 'j1', 1, true) }])).toEqual([
        ['skip', 0, '', 0],
      ])
      expect(await entries(keys.streams[1])).toEqual([])
      expect(await pending(keys.streams[1])).toEqual([])
      expect(await redis.xlen(keys.dead)).toBe(0)
      expect(await redis.hget(keys.status('j1'), 'status')).toBe(final)
    },
  )

  test("'skip' for an entry the job has moved on from (a newer entry, or none while scheduled)", async () => {
    const keys = await queue()
    const old = await liveJob(keys, 'j1')
    const newer = await deliver(keys.streams[1], { id: 'j1', job: '{}', r: 'a@x.com' })
    await redis.hset(keys.status('j1'), 'entry', newer)
    expect(await activate(keys, 5, [{ jobId: 'j1', args: entry(2, old, 'j1', 2, true) }])).toEqual([['skip', 0, '', 0]])
    expect((await entries(keys.streams[1])).map((e) => e.id)).toEqual([newer])

    await redis.hset(keys.status('j1'), 'status', 'retrying')
    await redis.hdel(keys.status('j1'), 'entry')
    expect(await activate(keys, 5, [{ jobId: 'j1', args: entry(2, newer, 'j1', 2, true) }])).toEqual([
      ['skip', 0, '', 0],
    ])
    expect(await redis.xlen(keys.streams[1])).toBe(0)
    expect(await redis.hget(keys.status('j1'), 'status')).toBe('retrying')
  })

  test("'poison' for an entry whose job has no status hash: dead-lettered, no status written", async () => {
    const keys = await queue()
    const entryId = await deliver(keys.streams[0], { id: 'gone', job: '{}' })
    expect(await activate(keys, 5, [{ jobId: 'gone', args: entry(1, entryId, 'gone', 1, true) }])).toEqual([
      ['poison', 0, '', 0],
    ])
    expect(await redis.xlen(keys.streams[0])).toBe(0)
    expect(await pending(keys.streams[0])).toEqual([])
    const [dead] = await entries(keys.dead)
    expect(dead?.fields).toEqual({
      id: 'gone',
      error: `stream entry ${entryId} has no job data`,
      attempts: '0',
      time: String(NOW),
    })
    expect(await redis.exists(keys.status('gone'))).toBe(0)
  })

  test("'poison' for an entry without a payload: the live job becomes dead with its attempts", async () => {
    const keys = await queue()
    const entryId = await liveJob(keys, 'j1', 2)
    expect(await activate(keys, 5, [{ jobId: 'j1', args: entry(2, entryId, 'j1', 1, false) }])).toEqual([
      ['poison', 0, '', 0],
    ])
    expect(await redis.hgetall(keys.status('j1'))).toMatchObject({
      status: 'dead',
      error: 'job data missing',
      updatedAt: String(NOW),
      entry: '',
    })
    expect((await entries(keys.dead))[0]?.fields).toMatchObject({ id: 'j1', attempts: '2' })
    expect(await redis.xlen(keys.streams[1])).toBe(0)
  })

  test("'poison' for an entry with no job id", async () => {
    const keys = await queue()
    const entryId = await deliver(keys.streams[2], { junk: '1' })
    expect(await activate(keys, 5, [{ jobId: '', args: entry(3, entryId, '', 1, false) }])).toEqual([
      ['poison', 0, '', 0],
    ])
    expect((await entries(keys.dead))[0]?.fields).toMatchObject({ id: '' })
    expect(await redis.xlen(keys.streams[2])).toBe(0)
  })

  test('many entries in one call: one verdict each, in order, each against its own stream and status', async () => {
    const keys = await queue()
    const high = await deliver(keys.streams[0], { id: 'h', job: '{}' })
    await redis.hset(keys.status('h'), 'status', 'queued', 'entry', high, 'attempts', 1)
    const done = await liveJob(keys, 'done')
    await redis.hset(keys.status('done'), 'status', 'sent')
    const live = await liveJob(keys, 'live')
    const replies = await activate(keys, 2, [
      { jobId: 'h', args: entry(1, high, 'h', 1, true) },
      { jobId: 'done', args: entry(2, done, 'done', 1, true) },
      { jobId: 'live', args: entry(2, live, 'live', 3, true) },
    ])
    expect(replies).toEqual([
      ['send', 1, '', 0],
      ['skip', 0, '', 0],
      ['over', 0, '', 0],
    ])
    expect((await entries(keys.streams[0])).map((e) => e.id)).toEqual([high])
    expect((await entries(keys.streams[1])).map((e) => e.id)).toEqual([live])
  })
})
