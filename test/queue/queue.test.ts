import { afterAll, describe, expect, test } from 'vitest'
import { createEmailQueue, type EmailJobInput, MailstreamError } from '../../src/index.js'
import { MAX_PAYLOAD_BYTES } from '../../src/job.js'
import { testJob } from '../helpers/queue.js'
import { connect, keysOf, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
const queues: { close(): Promise<void> }[] = []
afterAll(async () => {
  for (const queue of queues) await queue.close()
})

function newQueue(prefix = uniquePrefix('q')) {
  const queue = createEmailQueue({ redis, prefix })
  queues.push(queue)
  return queue
}

const job = testJob

describe('enqueue', () => {
  test('writes a queued job: stream entry, status hash', async () => {
    const queue = newQueue()
    const result = await queue.enqueue(job({ priority: 'high' }))
    expect(result).toMatchObject({ status: 'queued', duplicate: false })
    expect(await redis.xlen(`${queue.prefix}:send:high`)).toBe(1)
    expect(await redis.xlen(`${queue.prefix}:send:normal`)).toBe(0)
    const state = await queue.getStatus(result.id)
    expect(state).toMatchObject({
      id: result.id,
      status: 'queued',
      priority: 'high',
      attempts: 0,
      maxAttempts: 3,
    })
    expect(state?.createdAt).toBeGreaterThan(Date.now() - 10_000)
  })

  test('a delayed job waits in the delayed set with its due time', async () => {
    const queue = newQueue()
    const before = Date.now()
    const { id, status } = await queue.enqueue(job({ delayMs: 60_000 }))
    expect(status).toBe('scheduled')
    const score = Number(await redis.zscore(`${queue.prefix}:delayed`, id))
    expect(score).toBeGreaterThanOrEqual(before + 60_000)
    expect((await queue.getStatus(id))?.dueAt).toBe(score)
    expect(await redis.exists(`${queue.prefix}:send:normal`)).toBe(0)
  })

  test('an idempotency key returns the first job instead of adding another', async () => {
    const queue = newQueue()
    const first = await queue.enqueue(job({ idempotencyKey: 'signup:42' }))
    const second = await queue.enqueue(job({ idempotencyKey: 'signup:42', subject: 'Other' }))
    expect(second).toEqual({ id: first.id, status: 'queued', duplicate: true })
    expect(await redis.xlen(`${queue.prefix}:send:normal`)).toBe(1)
    expect(await redis.ttl(`${queue.prefix}:idem:signup:42`)).toBeGreaterThan(86_000)
  })

  test('an explicit id that exists is a duplicate, not a second job', async () => {
    const queue = newQueue()
    await queue.enqueue(job({ id: 'order-1' }))
    const again = await queue.enqueue(job({ id: 'order-1' }))
    expect(again).toEqual({ id: 'order-1', status: 'queued', duplicate: true })
    expect(await redis.xlen(`${queue.prefix}:send:normal`)).toBe(1)
  })

  test('enqueueMany writes all jobs, or none when one is bad', async () => {
    const queue = newQueue()
    const results = await queue.enqueueMany([job(), job({ priority: 'low' }), job({ delayMs: 1000 })])
    expect(results.map((result) => result.status)).toEqual(['queued', 'queued', 'scheduled'])
    const other = newQueue()
    await expect(other.enqueueMany([job(), job({ to: 'broken' })])).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: '1.to',
    })
    expect(await keysOf(redis, other.prefix)).toEqual([])
  })
})

describe('bad input writes nothing', () => {
  const cases: [string, string, EmailJobInput][] = [
    ['bad address', 'to', job({ to: 'not an address' })],
    ['CR/LF in an address', 'to', job({ to: 'a@example.com\r\nBcc: b@example.com' })],
    ['CR/LF in the subject', 'subject', job({ subject: 'Hi\r\nBcc: b@example.com' })],
    ['CR/LF in a header', 'headers.X-Note', job({ headers: { 'X-Note': 'a\nBcc: b@example.com' } })],
    ['unknown priority', 'priority', job({ priority: 'urgent' as never })],
    ['negative delay', 'delayMs', job({ delayMs: -5 })],
    ['payload over 1 MB', 'payload', job({ html: 'x'.repeat(MAX_PAYLOAD_BYTES + 1) })],
  ]
  test.each(cases)('%s', async (_name, field, input) => {
    const queue = newQueue()
    const error = await queue.enqueue(input).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_VALIDATION', field })
    expect(await keysOf(redis, queue.prefix)).toEqual([])
  })
})

describe('cancel', () => {
  test('cancels queued and scheduled jobs and removes them from their stream or set', async () => {
    const queue = newQueue()
    const queued = await queue.enqueue(job())
    const scheduled = await queue.enqueue(job({ delayMs: 60_000 }))
    expect(await queue.cancel(queued.id)).toBe(true)
    expect(await queue.cancel(scheduled.id)).toBe(true)
    expect(await redis.xlen(`${queue.prefix}:send:normal`)).toBe(0)
    expect(await redis.zcard(`${queue.prefix}:delayed`)).toBe(0)
    expect((await queue.getStatus(queued.id))?.status).toBe('cancelled')
    expect(await redis.ttl(`${queue.prefix}:status:${queued.id}`)).toBeGreaterThan(0)
    expect(await queue.cancel(queued.id)).toBe(false)
    expect(await queue.cancel('never-enqueued')).toBe(false)
  })

  test('counts a cancelled batch job in its batch', async () => {
    const queue = newQueue()
    const { id } = await queue.enqueue(job({ batchId: 'issue-7' }))
    await queue.cancel(id)
    expect(await redis.hgetall(`${queue.prefix}:batch:issue-7`)).toMatchObject({
      total: '1',
      cancelled: '1',
    })
  })
})

describe('options', () => {
  test('bad options are E_CONFIG naming the field', () => {
    expect(() => createEmailQueue({ redis, prefix: 'has space' })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'prefix' }),
    )
    expect(() => createEmailQueue({ redis: 42 as never })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'redis' }),
    )
    expect(() => createEmailQueue({ redis, statusTtl: 5 } as never)).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'statusTtl' }),
    )
  })

  test('close() leaves a client it was given open, and refuses further calls', async () => {
    const queue = createEmailQueue({ redis, prefix: uniquePrefix('q') })
    await queue.close()
    expect(await redis.ping()).toBe('PONG')
    await expect(queue.enqueue(job())).rejects.toMatchObject({
      code: 'E_CLOSED',
    })
  })
})

describe('suppression list', () => {
  test('add, has, list, remove; addresses compare case-insensitively', async () => {
    const queue = newQueue()
    await queue.suppression.add('Bounced@Example.com', 'bounce')
    expect(await queue.suppression.has('bounced@example.COM')).toBe(true)
    const { items, cursor } = await queue.suppression.list()
    expect(cursor).toBe('0')
    expect(items).toEqual([
      {
        address: 'bounced@example.com',
        reason: 'bounce',
        at: expect.any(Number),
      },
    ])
    expect(await queue.suppression.remove('BOUNCED@example.com')).toBe(true)
    expect(await queue.suppression.has('bounced@example.com')).toBe(false)
    await expect(queue.suppression.add('nope')).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'address',
    })
  })
})
