import { afterAll, describe, expect, test } from 'vitest'
import { createEmailQueue, type EmailJobInput, MailstreamError } from '../../src/index.js'
import { connect, redisUrl, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
const closing: { close(): Promise<void> }[] = []
afterAll(async () => {
  for (const one of closing) await one.close()
  redis.disconnect()
})

/** A queue on a connection of its own (connected before it is handed out), counting the script calls it sends. */
async function newQueue() {
  const client = redis.duplicate()
  const counted = { scriptCalls: 0 }
  const sendCommand = client.sendCommand.bind(client)
  client.sendCommand = ((...args: Parameters<typeof sendCommand>) => {
    // EVALSHA only: after a NOSCRIPT reply ioredis sends the same call again as EVAL.
    if (args[0].name.toLowerCase() === 'evalsha') counted.scriptCalls++
    return sendCommand(...args)
  }) as typeof client.sendCommand
  const prefix = uniquePrefix('coalesce')
  const queue = createEmailQueue({ redis: client, prefix })
  closing.push(queue, { close: async () => client.disconnect() })
  await queue.stats()
  counted.scriptCalls = 0
  return { queue, counted, prefix }
}

const job = (i: number, extra: Partial<EmailJobInput> = {}): EmailJobInput => ({
  type: 'welcome',
  to: `user${i}@example.com`,
  subject: 'Welcome',
  text: 'Hello',
  ...extra,
})

describe('enqueue calls made together', () => {
  test('are written in one script call, each with its own result, readable at once', async () => {
    const { queue, counted, prefix } = await newQueue()
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => queue.enqueue(job(i))))
    expect(counted.scriptCalls).toBe(1)
    expect(new Set(results.map((result) => result.id)).size).toBe(20)
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(20)
  })

  test('from 32 calls together, in two script calls, each with its own result, readable at once', async () => {
    const { queue, counted, prefix } = await newQueue()
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => queue.enqueue(job(i))))
    expect(counted.scriptCalls).toBe(2)
    expect(new Set(results.map((result) => result.id)).size).toBe(100)
    for (const result of results) expect(result).toMatchObject({ status: 'queued', duplicate: false })
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(100)
    const states = await Promise.all(results.map((result) => queue.getStatus(result.id)))
    expect(states.map((state) => state?.status)).toEqual(results.map(() => 'queued'))
  })

  test('an invalid job fails alone; the others are written', async () => {
    const { queue, prefix } = await newQueue()
    const calls = Array.from({ length: 20 }, (_, i) =>
      queue.enqueue(i === 7 ? job(i, { to: 'not an address' }) : job(i, { id: `job-${i}` })),
    )
    const settled = await Promise.allSettled(calls)
    const failed = settled.flatMap((outcome, i) => (outcome.status === 'rejected' ? [i] : []))
    expect(failed).toEqual([7])
    const error = (settled[7] as PromiseRejectedResult).reason
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'to' })
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(19)
  })

  test('duplicates in the same turn: the first is written, the others are duplicates of it', async () => {
    const { queue, prefix } = await newQueue()
    const [first, sameId, byKey, otherKey] = await Promise.all([
      queue.enqueue(job(1, { id: 'same', idempotencyKey: 'k1' })),
      queue.enqueue(job(2, { id: 'same' })),
      queue.enqueue(job(3, { idempotencyKey: 'k1' })),
      queue.enqueue(job(4, { idempotencyKey: 'k2' })),
    ])
    expect(first).toEqual({ id: 'same', status: 'queued', duplicate: false })
    expect(sameId).toEqual({ id: 'same', status: 'queued', duplicate: true })
    expect(byKey).toEqual({ id: 'same', status: 'queued', duplicate: true })
    expect(otherKey).toMatchObject({ status: 'queued', duplicate: false })
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(2)
  })

  test('a job whose write fails in Redis fails alone; jobs around it are written once and reported new', async () => {
    const { queue, prefix } = await newQueue()
    // A status key of the wrong type makes the script fail at that job, after the jobs before it.
    await redis.set(`${prefix}:status:broken`, 'not a hash')
    const ids = ['a1', 'a2', 'broken', 'a3', 'a4']
    const settled = await Promise.allSettled(ids.map((id, i) => queue.enqueue(job(i, { id }))))
    expect(settled.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ])
    expect((settled[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'E_REDIS' })
    for (const index of [0, 1, 3, 4]) {
      expect((settled[index] as PromiseFulfilledResult<unknown>).value).toEqual({
        id: ids[index],
        status: 'queued',
        duplicate: false,
      })
    }
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(4)
  })

  test('calls in different turns of the event loop still each resolve', async () => {
    const { queue } = await newQueue()
    const first = await queue.enqueue(job(1))
    await new Promise((resolve) => setImmediate(resolve))
    const second = await queue.enqueue(job(2))
    expect(first.id).not.toBe(second.id)
    expect(await queue.getStatus(second.id)).toMatchObject({ status: 'queued' })
  })
  test('close() right after calls it did not wait for: every call is written before QUIT', async () => {
    // A queue that owns its connection (created from a URL) quits it in close().
    const prefix = uniquePrefix('coalesce-close')
    const queue = createEmailQueue({ redis: redisUrl(), prefix })
    await queue.stats()
    const calls = Array.from({ length: 20 }, (_, i) => queue.enqueue(job(i)))
    const closed = queue.close()
    const results = await Promise.allSettled(calls)
    await closed
    expect(results.filter((result) => result.status === 'rejected')).toEqual([])
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(20)
  })
})
