import { type AddressInfo, createServer } from 'node:net'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, test } from 'vitest'
import { MailstreamError } from '../../src/errors.js'
import { queueKeys } from '../../src/keys.js'
import { enqueue } from '../../src/lua/enqueue.js'
import { boundedClient } from '../../src/redis.js'
import { connect, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
afterAll(() => redis.disconnect())

/** A client of its own that records the name of every command it sends. */
function countingClient() {
  const client = redis.duplicate()
  const sent: string[] = []
  const sendCommand = client.sendCommand.bind(client)
  client.sendCommand = ((...args: Parameters<typeof sendCommand>) => {
    sent.push(args[0].name.toLowerCase())
    return sendCommand(...args)
  }) as typeof client.sendCommand
  return { client, sent }
}

const record = (id: string) => ({
  id,
  payload: `{"id":"${id}"}`,
  dueAt: 0,
  priority: 'normal' as const,
  type: 'welcome',
  maxAttempts: 3,
  batchId: '',
  rcpt: 'a@example.com',
})

describe('runScript', () => {
  test('after SCRIPT FLUSH, a call is sent again as EVAL and written; the next goes as EVALSHA', async () => {
    const { client, sent } = countingClient()
    const keys = queueKeys(uniquePrefix('run-script'))
    const write = (id: string) =>
      enqueue(client, keys, { now: Date.now(), idempotencyTtlSeconds: 60, records: [record(id)] })
    try {
      await write('before')
      await redis.script('FLUSH')
      sent.length = 0
      expect(await write('after-flush')).toEqual([{ id: 'after-flush', status: 'queued', created: 'new' }])
      expect(sent).toEqual(['evalsha', 'eval'])
      sent.length = 0
      await write('next')
      expect(sent).toEqual(['evalsha'])
      expect(await redis.hget(keys.status('after-flush'), 'status')).toBe('queued')
      expect(await redis.xlen(keys.stream('normal'))).toBe(3)
    } finally {
      client.disconnect()
    }
  })

  test('an error that is not NOSCRIPT is not retried', async () => {
    const { client, sent } = countingClient()
    const keys = queueKeys(uniquePrefix('run-script'))
    await redis.set(keys.stream('normal'), 'not a stream')
    try {
      await expect(
        enqueue(client, keys, { now: Date.now(), idempotencyTtlSeconds: 60, records: [record('x')] }),
      ).rejects.toMatchObject({ code: 'E_REDIS' })
      expect(sent.filter((name) => name === 'eval')).toEqual([])
    } finally {
      client.disconnect()
    }
  })
})

describe('runScript on a bounded client', () => {
  test("a call Redis never answers is E_TIMEOUT naming the script, as the script's command did", async () => {
    // A server that accepts the connection and never answers.
    const silent = createServer(() => {})
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    const { port } = silent.address() as AddressInfo
    const client = new Redis({ port, host: '127.0.0.1', enableReadyCheck: false, maxRetriesPerRequest: 1 })
    client.on('error', () => {})
    try {
      const keys = queueKeys(uniquePrefix('run-script'))
      const call = enqueue(boundedClient(client, 100), keys, {
        now: Date.now(),
        idempotencyTtlSeconds: 60,
        records: [record('never')],
      })
      const error = await call.then(
        () => undefined,
        (reason: unknown) => reason,
      )
      expect(error).toBeInstanceOf(MailstreamError)
      expect(error).toMatchObject({ code: 'E_TIMEOUT' })
      expect((error as Error).message).toBe('[mailstream] mailstream_enqueue: Redis did not answer within 100 ms')
    } finally {
      client.disconnect()
      silent.close()
    }
  })
})
