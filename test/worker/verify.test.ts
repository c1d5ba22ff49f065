import { afterAll, expect, test } from 'vitest'
import type { MailstreamError } from '../../src/index.js'
import { createFailoverTransport } from '../../src/transports/failover.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()
afterAll(() => redis.disconnect())

test('verifyTransport: a failing check at start is an error event, and the worker sends all the same', async () => {
  const h = harness(redis)
  const transport = Object.assign(createMemoryTransport(), {
    verify: () => Promise.reject(new Error('535 authentication failed')),
  })
  const worker = h.worker({ transport, verifyTransport: true })
  const errors: MailstreamError[] = []
  worker.on('error', (error) => errors.push(error))
  await worker.start()
  await waitUntil(() => errors.length > 0, 5000, 'the verify error')
  expect(errors[0]).toMatchObject({
    code: 'E_TRANSPORT',
    message: expect.stringMatching(/verify at start failed: 535/),
  })
  const { id } = await h.queue.enqueue(testJob())
  expect((await h.settled(id)).status).toBe('sent')
})

test('verifyTransport: each failed member of a failover transport is reported; a check that never answers is cut off', async () => {
  const h = harness(redis)
  const primary = Object.assign(createMemoryTransport(), { name: 'primary', verify: () => new Promise(() => {}) })
  const backup = Object.assign(createMemoryTransport(), { name: 'backup', verify: () => Promise.resolve() })
  const failover = createFailoverTransport({
    transports: [{ transport: primary }, { transport: backup }],
    verifyTimeoutMs: 200,
  })
  const worker = h.worker({ transport: failover, verifyTransport: true })
  const errors: MailstreamError[] = []
  worker.on('error', (error) => errors.push(error))
  await worker.start()
  await waitUntil(() => errors.length > 0, 5000, 'the verify error')
  expect(errors).toHaveLength(1)
  expect(errors[0]?.message).toMatch(/primary failed/)
})

test('without verifyTransport nothing is checked', async () => {
  const h = harness(redis)
  let checked = 0
  const transport = Object.assign(createMemoryTransport(), {
    verify: async () => {
      checked++
    },
  })
  await h.worker({ transport }).start()
  await new Promise((resolve) => setTimeout(resolve, 100))
  expect(checked).toBe(0)
})
