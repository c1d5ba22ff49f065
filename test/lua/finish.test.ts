import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { waitUntil } from '../helpers/redis.js'
import { createScriptTestbed, GROUP } from './helpers.js'

const { redis, run, queue, entries, pending, deliver, listen } = createScriptTestbed()
const NOW = 1_700_000_000_000
const TTL = 3600

/** One job's outcome; `args` are the values after the header's six common ones. */
interface Outcome {
  outcome: 'sent' | 'suppressed' | 'dead' | 'retry' | 'throttle'
  streamIndex: number
  entryId: string
  jobId: string
  attempts: number
  batch?: number
  args: (string | number)[]
}

function finish(keys: QueueKeys, jobs: Outcome[], batches: string[] = [], metrics: (string | number)[] = []) {
  return run<number[]>(
    'finish',
    [
      ...keys.streams,
      keys.delayed,
      keys.dead,
      keys.stats,
      keys.metrics,
      ...jobs.map((job) => keys.status(job.jobId)),
      ...batches.map((batchId) => keys.batch(batchId)),
    ],
    [
      GROUP,
      NOW,
      TTL,
      jobs.length,
      batches.length,
      ...jobs.flatMap((job) => [
        job.outcome,
        job.streamIndex,
        job.entryId,
        job.jobId,
        job.attempts,
        job.batch ?? 0,
        ...job.args,
      ]),
      ...batches.flatMap((batchId) => [batchId, keys.progress(batchId)]),
      ...metrics,
    ],
  )
}

/** A job whose entry has been fetched by c1 and is being sent. */
async function inFlight(keys: QueueKeys, jobId: string, streamIndex = 2, batchId?: string) {
  const entryId = await deliver(keys.streams[streamIndex - 1] as string, { id: jobId, job: '{}', r: 'a@x.com' })
  await redis.hset(keys.status(jobId), 'status', 'queued', 'entry', entryId, 'attempts', 0)
  if (batchId) await redis.hset(keys.status(jobId), 'batch', batchId)
  return { streamIndex, entryId, jobId }
}

async function expectGone(keys: QueueKeys, streamIndex: number, entryId: string) {
  const stream = keys.streams[streamIndex - 1] as string
  expect((await entries(stream)).map((e) => e.id)).not.toContain(entryId)
  expect((await pending(stream)).map((p) => p.id)).not.toContain(entryId)
}

const ttlOf = (key: string) => redis.ttl(key)

describe('lua/finish', () => {
  test('sent: the status is final with its message id and TTL; the entry is acknowledged and deleted', async () => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1')
    expect(await finish(keys, [{ ...job, outcome: 'sent', attempts: 1, args: ['msg-1'] }])).toEqual([1])
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'sent',
      messageId: 'msg-1',
      attempts: '1',
      sentAt: String(NOW),
      updatedAt: String(NOW),
      entry: '',
    })
    expect(await ttlOf(keys.status('j1'))).toBeGreaterThan(TTL - 5)
    await expectGone(keys, 2, job.entryId)
    expect(await redis.hgetall(keys.stats)).toEqual({ sent: '1' })
  })

  test('suppressed: final, with the reason as its error', async () => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1', 1)
    expect(await finish(keys, [{ ...job, outcome: 'suppressed', attempts: 0, args: ['bounce'] }])).toEqual([1])
    expect(await redis.hgetall(keys.status('j1'))).toMatchObject({ status: 'suppressed', error: 'bounce', entry: '' })
    expect(await ttlOf(keys.status('j1'))).toBeGreaterThan(TTL - 5)
    await expectGone(keys, 1, job.entryId)
    expect(await redis.hgetall(keys.stats)).toEqual({ suppressed: '1' })
  })

  test('dead: a dead letter with the payload and error; the status is final', async () => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1', 3)
    expect(
      await finish(keys, [{ ...job, outcome: 'dead', attempts: 3, args: ['550 no such user', '{"p":1}'] }]),
    ).toEqual([1])
    expect((await entries(keys.dead)).map((e) => e.fields)).toEqual([
      { id: 'j1', job: '{"p":1}', error: '550 no such user', attempts: '3', time: String(NOW) },
    ])
    expect(await redis.hgetall(keys.status('j1'))).toMatchObject({
      status: 'dead',
      error: '550 no such user',
      attempts: '3',
      entry: '',
    })
    expect(await ttlOf(keys.status('j1'))).toBeGreaterThan(TTL - 5)
    await expectGone(keys, 3, job.entryId)
    expect(await redis.hgetall(keys.stats)).toEqual({ failed: '1' })
  })

  test.each([
    ['retry', 'retrying', 'retried'],
    ['throttle', 'throttled', 'throttled'],
  ] as const)('%s: back in the delayed set, payload and recipients kept, no TTL', async (outcome, status, counter) => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1')
    const due = NOW + 8000
    const throttles = outcome === 'throttle' ? 4 : 0
    const reply = await finish(keys, [
      { ...job, outcome, attempts: 2, args: [due, 'timeout', '{"p":1}', 'a@x.com', throttles] },
    ])
    expect(reply).toEqual([1])
    expect(await redis.zrange(keys.delayed, 0, -1, 'WITHSCORES')).toEqual(['j1', String(due)])
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status,
      attempts: '2',
      dueAt: String(due),
      error: 'timeout',
      job: '{"p":1}',
      rcpt: 'a@x.com',
      throttles: String(throttles),
      updatedAt: String(NOW),
      entry: '',
    })
    expect(await ttlOf(keys.status('j1'))).toBe(-1)
    await expectGone(keys, 2, job.entryId)
    expect(await redis.hgetall(keys.stats)).toEqual({ [counter]: '1' })
  })

  test('an outcome for an entry the status does not name is not applied, but the entry is still removed', async () => {
    const keys = await queue()
    const stale = await inFlight(keys, 'j1')
    await redis.hset(keys.status('j1'), 'entry', 'some-other-entry', 'status', 'queued')
    const gone = await inFlight(keys, 'j2')
    await redis.del(keys.status('j2'))
    const reply = await finish(keys, [
      { ...stale, outcome: 'dead', attempts: 1, args: ['x', '{}'] },
      { ...gone, outcome: 'retry', attempts: 1, args: [NOW + 1, 'x', '{}', 'a@x.com', 0] },
    ])
    expect(reply).toEqual([0, 0])
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'queued',
      entry: 'some-other-entry',
      attempts: '0',
    })
    expect(await redis.exists(keys.status('j2'))).toBe(0)
    expect(await redis.xlen(keys.dead)).toBe(0)
    expect(await redis.zcard(keys.delayed)).toBe(0)
    expect(await redis.exists(keys.stats)).toBe(0)
    await expectGone(keys, 2, stale.entryId)
    await expectGone(keys, 2, gone.entryId)
  })

  test('the same outcome written twice is applied once', async () => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1')
    const outcome: Outcome = { ...job, outcome: 'sent', attempts: 1, args: ['m1'] }
    expect(await finish(keys, [outcome])).toEqual([1])
    expect(await finish(keys, [{ ...outcome, args: ['m2'] }])).toEqual([0])
    expect(await redis.hget(keys.status('j1'), 'messageId')).toBe('m1')
    expect(await redis.hgetall(keys.stats)).toEqual({ sent: '1' })
  })

  test('many jobs on all three streams: each acknowledged on its own stream, totals summed', async () => {
    const keys = await queue()
    const a = await inFlight(keys, 'a', 1)
    const b = await inFlight(keys, 'b', 2)
    const c = await inFlight(keys, 'c', 3)
    const d = await inFlight(keys, 'd', 2)
    const reply = await finish(keys, [
      { ...a, outcome: 'sent', attempts: 1, args: ['m-a'] },
      { ...b, outcome: 'sent', attempts: 1, args: ['m-b'] },
      { ...c, outcome: 'retry', attempts: 1, args: [NOW + 1, 'e', '{}', 'a@x.com', 0] },
      { ...d, outcome: 'dead', attempts: 3, args: ['e', '{}'] },
    ])
    expect(reply).toEqual([1, 1, 1, 1])
    for (const stream of keys.streams) {
      expect(await redis.xlen(stream)).toBe(0)
      expect(await pending(stream)).toEqual([])
    }
    expect(await redis.hgetall(keys.stats)).toEqual({ sent: '2', retried: '1', failed: '1' })
  })

  test("batch counters count final outcomes only; the call that finishes a sealed batch publishes 'done'", async () => {
    const keys = await queue()
    const progress = await listen(keys.progress('b1'))
    await redis.hset(keys.batch('b1'), 'total', 3, 'sealed', '1')
    const a = await inFlight(keys, 'a', 2, 'b1')
    const b = await inFlight(keys, 'b', 2, 'b1')
    const c = await inFlight(keys, 'c', 2, 'b1')

    const first = await finish(
      keys,
      [
        { ...a, outcome: 'sent', attempts: 1, batch: 1, args: ['m'] },
        { ...b, outcome: 'retry', attempts: 1, batch: 1, args: [NOW + 1, 'e', '{}', 'a@x.com', 0] },
        { ...c, outcome: 'suppressed', attempts: 0, batch: 1, args: ['bounce'] },
      ],
      ['b1'],
    )
    expect(first).toEqual([1, 1, 1])
    expect(await redis.hgetall(keys.batch('b1'))).toMatchObject({ total: '3', sent: '1', suppressed: '1' })
    expect(await redis.hexists(keys.batch('b1'), 'failed')).toBe(0)
    expect(await redis.hexists(keys.batch('b1'), 'finishedAt')).toBe(0)
    await waitUntil(() => progress.messages.length === 1, 2000, 'progress')
    expect(progress.messages[0]).toMatchObject({ completed: 2, total: 3, percentage: 66.66, done: false })

    // The retried job comes back with a new entry and dies.
    const again = await inFlight(keys, 'b', 2, 'b1')
    expect(
      await finish(keys, [{ ...again, outcome: 'dead', attempts: 3, batch: 1, args: ['e', '{}'] }], ['b1']),
    ).toEqual([1])
    expect(await redis.hgetall(keys.batch('b1'))).toMatchObject({ failed: '1', finishedAt: String(NOW) })
    await waitUntil(() => progress.messages.length === 2, 2000, 'final progress')
    expect(progress.messages[1]).toMatchObject({ completed: 3, total: 3, percentage: 100, failed: 1, done: true })
    await progress.close()
  })

  test('an outcome not applied does not count in its batch', async () => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1', 2, 'b1')
    await redis.hset(keys.status('j1'), 'entry', '')
    await redis.hset(keys.batch('b1'), 'total', 1)
    expect(await finish(keys, [{ ...job, outcome: 'sent', attempts: 1, batch: 1, args: ['m'] }], ['b1'])).toEqual([0])
    expect(await redis.hmget(keys.batch('b1'), 'total', 'sent', 'failed', 'suppressed')).toEqual([
      '1',
      null,
      null,
      null,
    ])
  })

  test('the trailing pairs increment the metrics hash', async () => {
    const keys = await queue()
    const job = await inFlight(keys, 'j1')
    await redis.hset(keys.metrics, 'send:le:100', 4)
    await finish(keys, [{ ...job, outcome: 'sent', attempts: 1, args: ['m'] }], [], ['send:le:100', 1, 'send:sum', 42])
    expect(await redis.hgetall(keys.metrics)).toEqual({ 'send:le:100': '5', 'send:sum': '42' })
  })
})
