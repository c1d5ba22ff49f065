import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { Redis, ReplyError } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import {
  createEmailQueue,
  createRateLimiter,
  createVerificationCodes,
  type EmailQueue,
  MailstreamError,
} from '../../src/index.js'
import { testJob } from '../helpers/queue.js'
import { uniquePrefix, waitUntil } from '../helpers/redis.js'
import { freePort, type RedisServer, startRedisServer } from '../helpers/redis-server.js'

const root = join(import.meta.dirname, '..', '..')
/** The bound the tests give; a call must settle within it plus a generous second. */
const BOUND = 500
const LIMIT = BOUND + 1000
const SECRET = 'a-secret-of-at-least-16-bytes'
const BATCH = { subject: 'Issue 1', text: 'Hello' }
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Outcome {
  code: string
  ms: number
  error?: unknown
}

/** How a call settled: `resolved`, a MailstreamError code, or `raw <error>`; and after how long. */
async function outcome(call: () => unknown): Promise<Outcome> {
  const started = Date.now()
  try {
    await call()
    return { code: 'resolved', ms: Date.now() - started }
  } catch (error) {
    const code = error instanceof MailstreamError ? error.code : `raw ${String(error)}`
    return { code, ms: Date.now() - started, error }
  }
}

/** Runs every call at once; resolves `{ name: outcome }`. */
async function outcomes(calls: Record<string, () => unknown>): Promise<Record<string, Outcome>> {
  const entries = await Promise.all(
    Object.entries(calls).map(async ([name, call]) => [name, await outcome(call)] as const),
  )
  return Object.fromEntries(entries)
}

function expectAll(results: Record<string, Outcome>, codes: string[], limitMs: number): void {
  const summary = Object.fromEntries(
    Object.entries(results).map(([name, result]) => [name, codes.includes(result.code) && result.ms < limitMs]),
  )
  const expected = Object.fromEntries(Object.keys(results).map((name) => [name, true]))
  // On failure the message shows which calls settled how and when.
  expect(
    summary,
    JSON.stringify(results, (key, value) => (key === 'error' ? undefined : value)),
  ).toEqual(expected)
}

/** Every public call of a queue that waits on Redis, with arguments that reach Redis. */
function queueCalls(queue: EmailQueue): Record<string, () => unknown> {
  return {
    enqueue: () => queue.enqueue(testJob()),
    enqueueMany: () => queue.enqueueMany([testJob(), testJob()]),
    enqueueBatch: () => queue.enqueueBatch('frozen-batch', ['a@example.com', 'b@example.com'], undefined, BATCH),
    cancel: () => queue.cancel('some-job'),
    cancelBatch: () => queue.cancelBatch('frozen-batch'),
    getStatus: () => queue.getStatus('some-job'),
    getBatch: () => queue.getBatch('frozen-batch'),
    stats: () => queue.stats(),
    metrics: () => queue.metrics(),
    batchStats: () => queue.batchStats('frozen-batch'),
    'deadLetters.list': () => queue.deadLetters.list(),
    'deadLetters.retry': () => queue.deadLetters.retry({ all: true }),
    'deadLetters.purge': () => queue.deadLetters.purge(),
    'suppression.add': () => queue.suppression.add('frozen@example.com'),
    'suppression.remove': () => queue.suppression.remove('frozen@example.com'),
    'suppression.has': () => queue.suppression.has('frozen@example.com'),
    'suppression.list': () => queue.suppression.list(),
    'onProgress.ready': () => queue.onProgress('other-batch', () => {}).ready,
  }
}

describe('a frozen Redis (SIGSTOP: connections accepted, nothing answered)', () => {
  let server: RedisServer
  const clients: Redis[] = []
  const closers: (() => Promise<void>)[] = []

  beforeAll(async () => {
    server = await startRedisServer()
  })
  afterEach(async () => {
    server.resume()
    for (const close of closers.splice(0)) await close().catch(() => {})
  })
  afterAll(async () => {
    server.resume()
    for (const client of clients.splice(0)) client.disconnect()
    await server.stop()
    server.cleanup()
  })

  function givenClient(): Redis {
    const client = new Redis(server.url, { maxRetriesPerRequest: 2 })
    client.on('error', () => {})
    clients.push(client)
    return client
  }

  test('every queue call on a given client rejects with E_TIMEOUT within the bound, and close() settles', async () => {
    const client = givenClient()
    const queue = createEmailQueue({ redis: client, prefix: uniquePrefix('frozen'), commandTimeoutMs: BOUND })
    closers.push(() => queue.close())
    await queue.enqueue(testJob())
    // An open progress subscription: close() must not wait on its connection either.
    await queue.onProgress('watched-batch', () => {}).ready

    server.pause()
    const results = await outcomes(queueCalls(queue))
    expectAll(results, ['E_TIMEOUT'], LIMIT)
    expect(((results.enqueue as Outcome).error as Error).message).toMatch(/did not answer within 500 ms/)

    const closing = await outcome(() => queue.close())
    expect(closing.code).toBe('resolved')
    expect(closing.ms).toBeLessThan(LIMIT)
    // The given client is left open, and works again once Redis does.
    server.resume()
    expect(await client.ping()).toBe('PONG')
  })

  test('a timed-out enqueue may still be written; retrying it with its idempotencyKey does not write it twice', async () => {
    const client = givenClient()
    const prefix = uniquePrefix('frozen')
    const queue = createEmailQueue({ redis: client, prefix, commandTimeoutMs: BOUND })
    closers.push(() => queue.close())
    await client.ping()
    const job = testJob({ idempotencyKey: 'order-42-receipt' })

    server.pause()
    await expect(queue.enqueue(job)).rejects.toMatchObject({ code: 'E_TIMEOUT' })
    server.resume()
    // The command was sent before the bound ran out: Redis runs it once it wakes up.
    await waitUntil(async () => (await client.xlen(`${prefix}:send:normal`)) === 1, 5000, 'the late write')
    const retried = await queue.enqueue(job)
    expect(retried.duplicate).toBe(true)
    expect(await client.xlen(`${prefix}:send:normal`)).toBe(1)
  })

  test('a queue created from a URL: calls, calls under way at close(), and close() settle', async () => {
    const queue = createEmailQueue({ redis: server.url, prefix: uniquePrefix('frozen'), commandTimeoutMs: BOUND })
    closers.push(() => queue.close())
    await queue.enqueue(testJob())

    server.pause()
    const pending = outcome(() => queue.getStatus('under-way'))
    await sleep(50)
    const closing = await outcome(() => queue.close())
    expect(closing).toMatchObject({ code: 'resolved' })
    expect(closing.ms).toBeLessThan(LIMIT)
    const under = await pending
    expect(['E_TIMEOUT', 'E_REDIS']).toContain(under.code)
    expect(under.ms).toBeLessThan(LIMIT)
    await expect(queue.enqueue(testJob())).rejects.toMatchObject({ code: 'E_CLOSED' })
  })

  test('a queue created from a URL while Redis is already frozen: its first call and close() settle', async () => {
    server.pause()
    const queue = createEmailQueue({ redis: server.url, prefix: uniquePrefix('frozen'), commandTimeoutMs: BOUND })
    closers.push(() => queue.close())
    const results = await outcomes({ enqueue: () => queue.enqueue(testJob()), close: () => queue.close() })
    expect(results.enqueue?.code).toBe('E_TIMEOUT')
    expect(results.close?.code).toBe('resolved')
    expectAll({ enqueue: results.enqueue as Outcome }, ['E_TIMEOUT'], LIMIT)
    expect(results.close?.ms).toBeLessThan(LIMIT)
  })

  test('verification codes and the rate limiter reject with E_TIMEOUT within the bound; their close() settles', async () => {
    const client = givenClient()
    const queue = createEmailQueue({ redis: client, prefix: uniquePrefix('frozen'), commandTimeoutMs: BOUND })
    const codes = createVerificationCodes({ queue, secret: SECRET, commandTimeoutMs: BOUND })
    const ownCodes = createVerificationCodes({ redis: server.url, queue, secret: SECRET, commandTimeoutMs: BOUND })
    const limiter = createRateLimiter({ redis: client, commandTimeoutMs: BOUND })
    const ownLimiter = createRateLimiter({ redis: server.url, commandTimeoutMs: BOUND })
    closers.push(() => queue.close())
    await ownCodes.verify('warm@example.com', '123456')
    await ownLimiter.peek('warm', { rate: 1 })

    server.pause()
    const results = await outcomes({
      issue: () => codes.issue('frozen@example.com', { ip: '203.0.113.9' }),
      verify: () => codes.verify('frozen@example.com', '123456'),
      ownIssue: () => ownCodes.issue('frozen@example.com'),
      consume: () => limiter.consume('frozen', { rate: 10 }),
      peek: () => limiter.peek('frozen', { rate: 10 }),
      reset: () => limiter.reset('frozen'),
      ownConsume: () => ownLimiter.consume('frozen', { rate: 10 }),
    })
    expectAll(results, ['E_TIMEOUT'], LIMIT)
    const closed = await outcomes({
      codes: () => codes.close(),
      ownCodes: () => ownCodes.close(),
      limiter: () => limiter.close(),
      ownLimiter: () => ownLimiter.close(),
    })
    expectAll(closed, ['resolved'], LIMIT)
  })
})

describe('a refused connection (nothing listens on the port)', () => {
  test('a queue from a URL fails fast with E_REDIS, well before its bound; close() settles', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    const queue = createEmailQueue({ redis: url, prefix: uniquePrefix('refused') })
    const codes = createVerificationCodes({ redis: url, queue, secret: SECRET })
    const limiter = createRateLimiter({ redis: url })
    // The default bound is 5000 ms: E_REDIS within 3 s means the failure itself came back.
    const results = await outcomes({
      enqueue: () => queue.enqueue(testJob()),
      'suppression.add': () => queue.suppression.add('a@example.com'),
      issue: () => codes.issue('a@example.com'),
      consume: () => limiter.consume('refused', { rate: 1 }),
    })
    expectAll(results, ['E_REDIS'], 3000)
    expect(((results.enqueue as Outcome).error as Error).cause).toBeInstanceOf(Error)
    const closed = await outcomes({
      queue: () => queue.close(),
      codes: () => codes.close(),
      limiter: () => limiter.close(),
    })
    expectAll(closed, ['resolved'], LIMIT)
  })

  test('clients created from a URL print nothing to stderr (no "[ioredis] Unhandled error event")', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', './test/fixtures/text-register.mjs', 'test/fixtures/refused-producer.ts', url],
      { cwd: root, stdio: 'pipe' },
    )
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => {
      stdout += chunk
    })
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    const exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    expect(stderr).not.toContain('Unhandled error event')
    expect(stderr).toBe('')
    expect(exitCode).toBe(0)
    const results = JSON.parse(stdout) as Record<string, Outcome>
    expectAll(results, ['E_REDIS'], 3000)
  }, 30_000)

  test('an outage is reported once through onError, however often the client reconnects; the next outage once more', async () => {
    const server = await startRedisServer()
    const errors: MailstreamError[] = []
    const queue = createEmailQueue({
      redis: server.url,
      prefix: uniquePrefix('outage'),
      commandTimeoutMs: BOUND,
      onError: (error) => errors.push(error),
    })
    try {
      await queue.enqueue(testJob())
      expect(errors).toEqual([])

      await server.stop()
      await expect(queue.enqueue(testJob())).rejects.toMatchObject({ code: expect.stringMatching(/E_REDIS|E_TIMEOUT/) })
      // Reconnection attempts come every 50-2000 ms: over 2.5 s there are several.
      await sleep(2500)
      expect(errors).toHaveLength(1)
      expect(errors[0]).toBeInstanceOf(MailstreamError)
      expect(errors[0]).toMatchObject({ code: 'E_REDIS' })
      expect(((errors[0] as MailstreamError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED')

      await server.start()
      await waitUntil(
        async () => (await outcome(() => queue.enqueue(testJob()))).code === 'resolved',
        10_000,
        'the queue to work again',
      )
      await server.stop()
      await waitUntil(() => errors.length === 2, 5000, 'the second outage to be reported')
      await sleep(1000)
      expect(errors).toHaveLength(2)
    } finally {
      await queue.close()
      await server.stop()
      server.cleanup()
    }
  })
})

describe('errors from Redis leave the API as MailstreamError E_REDIS (OOM)', () => {
  let server: RedisServer
  let client: Redis

  beforeAll(async () => {
    server = await startRedisServer()
    client = new Redis(server.url, { maxRetriesPerRequest: 1 })
    client.on('error', () => {})
  })
  afterAll(async () => {
    client.disconnect()
    await server.stop()
    server.cleanup()
  })

  test('writes refused with OOM reject with E_REDIS and the ReplyError as cause; reads still work', async () => {
    const queue = createEmailQueue({ redis: client, prefix: uniquePrefix('oom') })
    const codes = createVerificationCodes({ queue, secret: SECRET })
    const limiter = createRateLimiter({ redis: client })
    await client.config('SET', 'maxmemory-policy', 'noeviction')
    await client.config('SET', 'maxmemory', '1')
    try {
      const results = await outcomes({
        'suppression.add': () => queue.suppression.add('full@example.com'),
        enqueue: () => queue.enqueue(testJob()),
        enqueueBatch: () => queue.enqueueBatch('oom-batch', ['a@example.com'], undefined, BATCH),
        issue: () => codes.issue('full@example.com'),
        consume: () => limiter.consume('oom', { rate: 1 }),
      })
      expectAll(results, ['E_REDIS'], LIMIT)
      for (const result of Object.values(results)) {
        const error = result.error as MailstreamError
        expect(error.cause).toBeInstanceOf(ReplyError)
        expect(error.message).toMatch(/OOM/)
      }
      expect(await queue.suppression.has('full@example.com')).toBe(false)
    } finally {
      await client.config('SET', 'maxmemory', '0')
      await queue.close()
    }
  })
})

describe('commandTimeoutMs and onError options', () => {
  test('are validated: E_CONFIG naming the field', () => {
    const redis = 'redis://127.0.0.1:1'
    for (const commandTimeoutMs of [0, 5, -1, 1.5, 700_000, '5000']) {
      expect(() => createEmailQueue({ redis, commandTimeoutMs: commandTimeoutMs as number })).toThrow(
        expect.objectContaining({ code: 'E_CONFIG', field: 'commandTimeoutMs' }),
      )
      expect(() => createRateLimiter({ redis, commandTimeoutMs: commandTimeoutMs as number })).toThrow(
        expect.objectContaining({ code: 'E_CONFIG', field: 'commandTimeoutMs' }),
      )
    }
    expect(() => createEmailQueue({ redis, onError: 'log' as never })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'onError' }),
    )
  })
})
