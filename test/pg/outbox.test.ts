import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { createEmailQueue, MailstreamError } from '../../src/index.js'
import { createOutbox, createOutboxRelay, migrationSql, type OutboxRelay } from '../../src/pg/index.js'
import { queueInternals } from '../../src/queue/internals.js'
import { root } from '../helpers/build.js'
import { harness, sendCounts, testJob } from '../helpers/queue.js'
import { connect, persistentRedis, redisUrl, waitUntil } from '../helpers/redis.js'

// Real PostgreSQL (DATABASE_URL, or the local server) and the test run's redis-server.
const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const schema = `outbox_${randomBytes(4).toString('hex')}`
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 })
const redis = connect()
const relays: OutboxRelay[] = []
let tableNumber = 0

beforeAll(async () => {
  await pool.query(`CREATE SCHEMA ${schema}`)
})
afterEach(async () => {
  await Promise.all(relays.splice(0).map((relay) => relay.stop()))
})
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await pool.end()
  redis.disconnect()
})

/** A fresh outbox table, a queue on a fresh prefix, and relays stopped after the test. */
async function setup() {
  const table = `${schema}.outbox_${++tableNumber}`
  const h = harness(redis)
  const outbox = createOutbox({ queue: h.queue, table })
  await outbox.migrate(pool)
  const relay = (options: Partial<Parameters<typeof createOutboxRelay>[0]> = {}) => {
    const made = createOutboxRelay({ queue: h.queue, pool, table, pollIntervalMs: 50, ...options })
    relays.push(made)
    return made
  }
  const count = async (where = 'true') =>
    Number((await pool.query(`SELECT count(*) AS n FROM ${table} WHERE ${where}`)).rows[0].n)
  return { ...h, table, outbox, relay, count }
}

/** Runs `body` in a transaction on its own connection; commits unless `rollback`. */
async function transaction<T>(body: (client: pg.PoolClient) => Promise<T>, rollback = false): Promise<T> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    const result = await body(client)
    await client.query(rollback ? 'ROLLBACK' : 'COMMIT')
    return result
  } finally {
    client.release()
  }
}

describe('enqueue in a transaction', () => {
  test('a rolled-back transaction sends nothing; nothing reaches Redis', async () => {
    const { outbox, relay, queue, transport, worker, count } = await setup()
    const { id } = await transaction((client) => outbox.enqueue(client, testJob()), true)
    expect(await count()).toBe(0)
    expect(await relay().relayOnce()).toBe(0)
    await worker().start()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await queue.getStatus(id)).toBeNull()
    expect(transport.messages).toHaveLength(0)
  })

  test('a committed job is relayed at the commit (LISTEN) and sent once', async () => {
    const { outbox, relay, settled, transport, worker, count } = await setup()
    // A long poll interval: only the notification can wake the relay this soon.
    relay({ pollIntervalMs: 60_000 }).start()
    await worker().start()
    await new Promise((resolve) => setTimeout(resolve, 200)) // LISTEN in place
    const { id } = await transaction((client) => outbox.enqueue(client, testJob()))
    expect((await settled(id, 5000)).status).toBe('sent')
    expect(sendCounts(transport).get(id)).toBe(1)
    await waitUntil(async () => (await count('relayed_at IS NOT NULL')) === 1, 5000, 'the row marked relayed')
  })

  test('bad input is refused before anything is written, and the transaction goes on', async () => {
    const { outbox, count } = await setup()
    const error = await transaction(async (client) => {
      const refused = await outbox.enqueue(client, testJob({ to: 'not an address' })).catch((e: unknown) => e)
      await client.query('SELECT 1') // the transaction is not aborted
      return refused
    })
    expect(error).toBeInstanceOf(MailstreamError)
    expect((error as MailstreamError).code).toBe('E_VALIDATION')
    expect((error as MailstreamError).field).toBe('to')
    const many = await transaction((client) =>
      outbox.enqueueMany(client, [testJob(), testJob({ subject: 7 as never })]).catch((e: unknown) => e),
    )
    expect((many as MailstreamError).field).toBe('1.subject')
    expect(await count()).toBe(0)
  })

  test('a delayed job keeps its due time from the insert, however late the relay', async () => {
    const { outbox, relay, queue } = await setup()
    const { id } = await transaction((client) => outbox.enqueue(client, testJob({ delayMs: 60_000 })))
    const insertedAt = Date.now()
    await new Promise((resolve) => setTimeout(resolve, 300))
    await relay().relayOnce()
    const state = await queue.getStatus(id)
    expect(state?.status).toBe('scheduled')
    expect(state?.dueAt).toBeLessThanOrEqual(insertedAt + 60_000)
  })

  test('a query function (a query builder transaction) works as a client does', async () => {
    const { outbox, relay, settled, worker } = await setup()
    const entries = await transaction((client) =>
      outbox.enqueueMany((text, values) => client.query(text, values), [testJob(), testJob()]),
    )
    expect(entries.map((entry) => entry.outboxId).every(Boolean)).toBe(true)
    await relay().relayOnce()
    await worker().start()
    for (const { id } of entries) expect((await settled(id)).status).toBe('sent')
  })

  test('the table name is checked: only plain identifiers reach SQL', () => {
    const queue = createEmailQueue({ redis, prefix: 'outbox-config' })
    expect(() => createOutbox({ queue, table: 'x; DROP TABLE users' })).toThrow(/table/)
    expect(() => createOutbox({ queue, table: 'a.b.c' })).toThrow(/table/)
    expect(migrationSql('app.mail_outbox')).toContain('CREATE TABLE IF NOT EXISTS app.mail_outbox')
    return queue.close()
  })
})

describe('relays', () => {
  test('two relays at once move each row once', async () => {
    const { outbox, relay, transport, worker, count } = await setup()
    const jobs = Array.from({ length: 400 }, (_, i) => testJob({ to: `reader${i}@example.com` }))
    const entries = await transaction((client) => outbox.enqueueMany(client, jobs))
    const [one, two] = [relay({ batchSize: 25 }), relay({ batchSize: 25 })] as [OutboxRelay, OutboxRelay]
    one.start()
    two.start()
    await waitUntil(async () => (await count('relayed_at IS NOT NULL')) === 400, 20_000, 'every row relayed')
    const [a, b] = await Promise.all([one.stats(), two.stats()])
    // A row relayed by both would count twice.
    expect(a.relayed + b.relayed).toBe(400)
    expect(a.waiting).toBe(0)
    await worker({ concurrency: 50 }).start()
    await waitUntil(() => transport.messages.length >= 400, 20_000, 'every email sent')
    const counts = sendCounts(transport)
    expect(counts.size).toBe(400)
    for (const { id } of entries) expect(counts.get(id)).toBe(1)
  })

  test('a relay killed (SIGKILL) after writing to Redis, before marking the rows: each job sent once', async () => {
    const { outbox, relay, prefix, table, transport, worker, queue, count } = await setup()
    const entries = await transaction((client) =>
      outbox.enqueueMany(
        client,
        Array.from({ length: 20 }, (_, i) => testJob({ to: `killed${i}@example.com` })),
      ),
    )
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        './test/fixtures/text-register.mjs',
        'test/fixtures/outbox-relay.ts',
        redisUrl(),
        databaseUrl,
        prefix,
        table,
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
    )
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
    })
    await waitUntil(() => out.includes('marking 20'), 20_000, 'the child to write the jobs')
    for (const { id } of entries) expect((await queue.getStatus(id))?.status).toBe('queued')
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    // Its transaction ends when PostgreSQL sees the connection gone; the rows are claimable again.
    const survivor = relay({ batchSize: 100 })
    await waitUntil(async () => (await survivor.relayOnce()) === 20, 20_000, 'the rows claimed again')
    expect(await count('relayed_at IS NOT NULL')).toBe(20)
    await worker().start()
    await waitUntil(() => transport.messages.length >= 20, 10_000, 'every email sent')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const counts = sendCounts(transport)
    expect(counts.size).toBe(20)
    for (const { id } of entries) expect(counts.get(id)).toBe(1)
  })

  test('retention: relayed rows past it are deleted, waiting and recent rows kept', async () => {
    const { outbox, relay, table, count } = await setup()
    await transaction((client) => outbox.enqueueMany(client, [testJob(), testJob(), testJob()]))
    const first = relay()
    await first.relayOnce()
    await pool.query(
      `UPDATE ${table} SET relayed_at = now() - interval '2 days' WHERE id = (SELECT min(id) FROM ${table})`,
    )
    await transaction((client) => outbox.enqueue(client, testJob()))
    relay({ retentionSeconds: 86_400, listen: false }).start()
    await waitUntil(async () => (await count()) === 3, 5000, 'the old row deleted')
    expect(await count('relayed_at IS NOT NULL')).toBe(3)
  })

  test('stats and metrics show the backlog', async () => {
    const { outbox, relay } = await setup()
    await transaction((client) => outbox.enqueueMany(client, [testJob(), testJob()]))
    const idle = relay()
    const stats = await idle.stats()
    expect(stats).toMatchObject({ waiting: 2, failed: 0, relayed: 0, running: false })
    expect(stats.oldestSeconds).toBeGreaterThanOrEqual(0)
    expect(await idle.metrics()).toMatch(/^mailstream_outbox_waiting\{table="[^"]+"\} 2$/m)
  })

  test('a row whose payload is not a job is marked failed, not retried for ever', async () => {
    const { outbox, relay, table, count } = await setup()
    await transaction((client) => outbox.enqueue(client, testJob()))
    await pool.query(`INSERT INTO ${table} (job_id, payload) VALUES ('broken', '{not json')`)
    expect(await relay().relayOnce()).toBe(2)
    expect(await count('failed_at IS NOT NULL')).toBe(1)
    expect(await count('relayed_at IS NOT NULL')).toBe(1)
    expect((await relay().stats()).failed).toBe(1)
  })
})

describe('Redis down', () => {
  const ownRedis = persistentRedis()

  test('rows wait while Redis does not answer, then go, each once', async () => {
    const { server, client } = await ownRedis()
    const queue = createEmailQueue({ redis: client, prefix: 'outbox-down', commandTimeoutMs: 300 })
    const table = `${schema}.outbox_down`
    const outbox = createOutbox({ queue, table })
    await outbox.migrate(pool)
    const errors: MailstreamError[] = []
    const relay = createOutboxRelay({ queue, pool, table, pollIntervalMs: 50, onError: (e) => errors.push(e) })
    relays.push(relay)
    server.pause()
    try {
      const entries = await transaction((tx) => outbox.enqueueMany(tx, [testJob(), testJob(), testJob()]))
      await expect(relay.relayOnce()).rejects.toMatchObject({ code: 'E_TIMEOUT' })
      relay.start()
      await new Promise((resolve) => setTimeout(resolve, 500))
      expect((await relay.stats()).waiting).toBe(3)
      expect(errors.length).toBeGreaterThan(0)
      server.resume()
      await waitUntil(async () => (await relay.stats()).waiting === 0, 15_000, 'the rows relayed')
      for (const { id } of entries) expect((await queue.getStatus(id))?.status).toBe('queued')
      // Written once each, though a timed-out write may have landed when Redis woke.
      expect(await client.xlen(queueInternals(queue).keys.stream('normal'))).toBe(3)
    } finally {
      server.resume()
      await relay.stop()
      await queue.close()
    }
  })
})
