import { describe, expect, test } from 'vitest'
import { createEmailQueue, type EmailJobInput } from '../../src/index.js'
import { jobFingerprint } from '../../src/queue/idempotency.js'
import { testJob } from '../helpers/queue.js'
import { connect, keysOf, uniquePrefix } from '../helpers/redis.js'

const redis = connect()

function queues() {
  const prefix = uniquePrefix('idem')
  const strict = createEmailQueue({ redis, prefix, strictIdempotency: true })
  const lenient = createEmailQueue({ redis, prefix })
  return { prefix, strict, lenient }
}

const order = (key: string, overrides: Partial<EmailJobInput> = {}) =>
  testJob({
    idempotencyKey: key,
    to: 'buyer@example.com',
    subject: 'Your order',
    data: { order: 1, total: 10 },
    ...overrides,
  })

describe('strict idempotency', () => {
  test('the same job again (no id, a later delay, data in another order) is the first job', async () => {
    const { strict } = queues()
    const first = await strict.enqueue(order('o-1', { delayMs: 60_000 }))
    const again = await strict.enqueue(order('o-1', { delayMs: 60_000, data: { total: 10, order: 1 } }))
    expect(again).toEqual({ id: first.id, status: 'scheduled', duplicate: true })
  })

  test('the key with other content is refused with E_IDEMPOTENCY_CONFLICT and nothing is written', async () => {
    const { strict, prefix } = queues()
    const first = await strict.enqueue(order('o-2'))
    const before = await keysOf(redis, prefix)
    const lengthBefore = await redis.xlen(`${prefix}:send:normal`)
    for (const changed of [
      { to: 'someone.else@example.com' },
      { subject: 'Other' },
      { data: { order: 2, total: 10 } },
    ]) {
      const error = await strict.enqueue(order('o-2', changed)).catch((caught) => caught)
      expect(error).toMatchObject({ code: 'E_IDEMPOTENCY_CONFLICT', field: 'idempotencyKey' })
      expect(error.message).toContain(first.id)
    }
    expect(await keysOf(redis, prefix)).toEqual(before)
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(lengthBefore)
  })

  test('without the option (the default) the key answers with the first job, as before', async () => {
    const { strict, lenient } = queues()
    const first = await strict.enqueue(order('o-3'))
    // A key written with a fingerprint still names its job for a queue without the option.
    expect(await lenient.enqueue(order('o-3', { subject: 'Other' }))).toEqual({
      id: first.id,
      status: 'queued',
      duplicate: true,
    })
    // A key written without a fingerprint cannot be compared: strict answers with its job.
    const old = await lenient.enqueue(order('o-4'))
    expect(await strict.enqueue(order('o-4', { subject: 'Other' }))).toMatchObject({ id: old.id, duplicate: true })
  })

  test('enqueueMany: the first conflict is named by index; the other jobs are written', async () => {
    const { strict } = queues()
    await strict.enqueue(order('o-5'))
    const error = await strict
      .enqueueMany([order('o-6'), order('o-5', { subject: 'Other' }), order('o-7')])
      .catch((caught) => caught)
    expect(error).toMatchObject({ code: 'E_IDEMPOTENCY_CONFLICT', field: '1.idempotencyKey' })
    const [six, seven] = await strict.enqueueMany([order('o-6'), order('o-7')])
    expect([six?.duplicate, seven?.duplicate]).toEqual([true, true])
  })

  test('two tries with other content at once: one is written, the other refused', async () => {
    const { strict } = queues()
    const results = await Promise.allSettled([
      strict.enqueue(order('o-8', { subject: 'A' })),
      strict.enqueue(order('o-8', { subject: 'B' })),
    ])
    expect(results.map((result) => result.status).sort()).toEqual(['fulfilled', 'rejected'])
  })

  test('the fingerprint leaves out the id, the enqueue time and the key, and nothing else', () => {
    const base = {
      id: 'a',
      type: 'welcome',
      to: [{ address: 'x@example.com' }],
      priority: 'normal' as const,
      maxAttempts: 3,
      createdAt: 1,
    }
    expect(jobFingerprint(base)).toBe(jobFingerprint({ ...base, id: 'b', createdAt: 2, idempotencyKey: 'k' }))
    expect(jobFingerprint(base)).not.toBe(jobFingerprint({ ...base, priority: 'high' }))
    expect(jobFingerprint(base)).toMatch(/^[A-Za-z0-9_-]{22}$/)
  })

  test('the option is checked', () => {
    expect(() => createEmailQueue({ redis, strictIdempotency: 'yes' as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG' }),
    )
  })
})
