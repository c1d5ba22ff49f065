import { afterAll, describe, expect, test } from 'vitest'
import { queueKeys } from '../../src/keys.js'
import { enqueue } from '../../src/lua/enqueue.js'
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
