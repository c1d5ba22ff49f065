import { expect, test } from 'vitest'
import { abSlot } from '../../src/ab-test/split.js'
import { queueKeys } from '../../src/keys.js'
import { harness, sendCounts } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()

test('workers decide a due test once and send the winner to the rest, each recipient once', async () => {
  const h = harness(redis)
  const addresses = Array.from({ length: 1500 }, (_, i) => `w${i}@example.com`)
  const startedAt = Date.now()
  await Promise.all([h.worker({ concurrency: 50 }).start(), h.worker({ concurrency: 50 }).start()])
  const result = await h.queue.enqueueBatch('ab-worker', addresses, undefined, {
    text: 'Hello',
    variants: [{ subject: 'Early' }, { subject: 'Late', text: 'Hello again' }],
    test: { share: 0.2, decideAfter: 1500, metric: 'opens', minSample: 1000 },
  })
  const held = result.held as number
  expect(held + result.enqueued).toBe(1500)
  await h.transport.waitForCount(1500, { timeoutMs: 20_000 })
  await waitUntil(async () => (await h.queue.getBatch('ab-worker'))?.state === 'finished', 10_000, 'the batch to end')
  const batch = await h.queue.getBatch('ab-worker')
  // About 150 sends per variant, under the minimum sample: the first variant wins.
  expect(batch?.abTest).toMatchObject({ state: 'done', released: held, decision: { winner: 0, reason: 'min-sample' } })
  expect(batch?.abTest?.decision?.at).toBeGreaterThanOrEqual(startedAt)
  const decidedAt = batch?.abTest?.decision?.at as number
  expect(decidedAt).toBeGreaterThanOrEqual(batch?.abTest?.decideAt as number)
  // Nothing of the rest went before the decision.
  const early = h.transport.messages.filter(({ sentAt }) => sentAt < decidedAt)
  expect(early.length).toBeGreaterThan(0)
  for (const { message } of early)
    expect(abSlot('ab-worker', message.to[0]?.address as string, 0.2, 2).inTest).toBe(true)
  const counts = sendCounts(h.transport)
  expect(counts.size).toBe(1500)
  expect([...counts.values()].every((count) => count === 1)).toBe(true)
  for (const { message } of h.transport.messages) {
    const slot = abSlot('ab-worker', message.to[0]?.address as string, 0.2, 2)
    expect(message.subject).toBe(slot.inTest && slot.variant === 1 ? 'Late' : 'Early')
  }
  expect(await redis.zcard(queueKeys(h.prefix).abTests)).toBe(0)
})
