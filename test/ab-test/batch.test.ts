import { describe, expect, test } from 'vitest'
import { abSlot } from '../../src/ab-test/split.js'
import { winnerRecords } from '../../src/ab-test/state.js'
import { createSesWebhookHandler, type EmailQueue, MailstreamError } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { enqueue } from '../../src/lua/enqueue.js'
import { harness, sendCounts } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'
import { notification, post, sesEvent, snsFixture, TOPIC_ARN } from '../helpers/sns.js'

const redis = connect()
const sns = snsFixture()

const readers = (count: number, batch = 'r') => Array.from({ length: count }, (_, i) => `${batch}${i}@example.com`)
const abOptions = (metric: 'clicks' | 'opens', extra: Record<string, unknown> = {}) => ({
  text: 'Hello {{name}}',
  variants: [{ subject: 'Subject A' }, { subject: 'Subject B' }],
  test: { share: 0.3, decideAfter: '2h', metric, minSample: 5, ...extra },
})

function handlerFor(queue: EmailQueue) {
  return createSesWebhookHandler({ queue, allowedTopicArns: [TOPIC_ARN], fetchCertificate: sns.fetchCertificate })
}

/** An open or click event for one sent message, with the user agent SES reports. */
function engagement(type: 'Open' | 'Click', messageId: string, jobId: string, userAgent: string | undefined) {
  const record = sesEvent({ type, messageId, jobId }) as Record<string, Record<string, unknown>>
  const detail = record[type.toLowerCase()] as Record<string, unknown>
  if (userAgent === undefined) delete detail.userAgent
  else detail.userAgent = userAgent
  return sns.sign(notification(record))
}

/** Splits addresses as the batch does: the test group by variant, and the rest. */
function split(batchId: string, addresses: string[], share: number) {
  const variants: string[][] = [[], []]
  const rest: string[] = []
  for (const address of addresses) {
    const slot = abSlot(batchId, address, share, 2)
    if (slot.inTest) variants[slot.variant]?.push(address)
    else rest.push(address)
  }
  return { variants, rest }
}

const subjectsByAddress = (h: ReturnType<typeof harness>) =>
  new Map(h.transport.messages.map(({ message }) => [message.to[0]?.address as string, message.subject]))

describe('A/B test batches', () => {
  test('only the test share is sent before the decision; then everyone else gets the winner once', async () => {
    const h = harness(redis)
    const addresses = readers(120)
    const expected = split('ab-1', addresses, 0.3)
    const tested = expected.variants.flat().length
    const result = await h.queue.enqueueBatch('ab-1', addresses, undefined, abOptions('clicks'))
    expect(result).toMatchObject({ total: 120, enqueued: tested, held: 120 - tested })
    await h.worker({ concurrency: 20 }).start()
    await h.transport.waitForCount(tested)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(h.transport.messages).toHaveLength(tested)
    const subjects = subjectsByAddress(h)
    for (const address of expected.variants[0] ?? []) expect(subjects.get(address)).toBe('Subject A')
    for (const address of expected.variants[1] ?? []) expect(subjects.get(address)).toBe('Subject B')
    await waitUntil(async () => (await h.queue.getBatch('ab-1'))?.sent === tested, 5000, 'the test sends to count')
    const testing = await h.queue.getBatch('ab-1')
    expect(testing).toMatchObject({ state: 'enqueueing', abTest: { state: 'testing', share: 0.3, metric: 'clicks' } })
    expect(testing?.abTest?.variants.map((variant) => variant.sent)).toEqual(expected.variants.map((v) => v.length))

    // Two clicks (one message clicked twice) for B, one for A.
    const handler = handlerFor(h.queue)
    const sent = (address: string) => h.transport.messages.find(({ message }) => message.to[0]?.address === address)
    const clicks = [
      expected.variants[1]?.[0],
      expected.variants[1]?.[0],
      expected.variants[1]?.[1],
      expected.variants[0]?.[0],
    ]
    for (const address of clicks) {
      const message = sent(address as string)
      await post(handler, engagement('Click', message?.messageId as string, message?.message.jobId as string, 'Mail'))
    }
    const decided = await h.queue.decideAbTest('ab-1')
    expect(decided).toMatchObject({ done: true, enqueued: 120 - tested, decision: { winner: 1, reason: 'best-rate' } })
    expect(decided.decision.numbers.variants.map((variant) => variant.clicked)).toEqual([1, 2])

    await h.transport.waitForCount(120)
    await waitUntil(async () => (await h.queue.getBatch('ab-1'))?.state === 'finished', 5000, 'the batch to finish')
    const after = subjectsByAddress(h)
    for (const address of expected.rest) expect(after.get(address)).toBe('Subject B')
    expect([...sendCounts(h.transport).values()].every((count) => count === 1)).toBe(true)
    expect(h.transport.messages).toHaveLength(120)

    // Deciding again, and enqueueing the batch again, send nobody twice.
    expect(await h.queue.decideAbTest('ab-1')).toMatchObject({ done: true, enqueued: 0, decision: { winner: 1 } })
    expect(await h.queue.enqueueBatch('ab-1', addresses, undefined, abOptions('clicks'))).toMatchObject({
      enqueued: 0,
      duplicates: 120,
    })
    const batch = await h.queue.getBatch('ab-1')
    expect(batch).toMatchObject({
      total: 120,
      sent: 120,
      state: 'finished',
      abTest: { state: 'done', released: 120 - tested },
    })
    expect(batch?.abTest?.decision).toMatchObject({ winner: 1, reason: 'best-rate', numbers: { metric: 'clicks' } })
    expect(batch?.abTest?.variants[1]).toMatchObject({ subject: 'Subject B', clicked: 2 })
    expect(batch?.abTest?.variants[1]?.clickRate).toBeCloseTo(2 / (expected.variants[1]?.length as number))
  })

  test('by opens, machine opens (no agent, a bare Mozilla/5.0, scanners) are not counted', async () => {
    const h = harness(redis)
    const addresses = readers(80, 'o')
    await h.queue.enqueueBatch('ab-opens', addresses, undefined, abOptions('opens'))
    await h.worker({ concurrency: 20 }).start()
    const { variants } = split('ab-opens', addresses, 0.3)
    await h.transport.waitForCount(variants.flat().length)
    const handler = handlerFor(h.queue)
    const message = (address: string) => h.transport.messages.find((m) => m.message.to[0]?.address === address)
    const open = async (address: string | undefined, agent: string | undefined) => {
      const sent = message(address as string)
      await post(handler, engagement('Open', sent?.messageId as string, sent?.message.jobId as string, agent))
    }
    // A: four machine opens. B: one human open (and the same reader again).
    await open(variants[0]?.[0], 'Mozilla/5.0')
    await open(variants[0]?.[1], undefined)
    await open(variants[0]?.[2], 'python-requests/2.31')
    await open(variants[0]?.[3], 'Mozilla/5.0')
    await open(variants[1]?.[0], 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15')
    await open(variants[1]?.[0], 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15')
    await waitUntil(async () => (await h.queue.getBatch('ab-opens'))?.sent === variants.flat().length, 5000, 'sends')
    const before = await h.queue.getBatch('ab-opens')
    expect(before?.abTest?.variants.map((variant) => variant.opened)).toEqual([0, 1])
    expect((await h.queue.batchStats('ab-opens'))?.totals.opened).toBe(5) // SES's own count keeps every open
    const { decision } = await h.queue.decideAbTest('ab-opens')
    expect(decision).toMatchObject({ winner: 1, reason: 'best-rate' })
    await h.transport.waitForCount(80)
  })

  test('with no variant at the minimum sample the first variant wins, and the result says why', async () => {
    const h = harness(redis)
    const addresses = readers(40, 'm')
    await h.queue.enqueueBatch('ab-min', addresses, undefined, abOptions('clicks', { minSample: 100 }))
    // Enqueued again before the decision: the same split, so no recipient gets a second job.
    expect(
      await h.queue.enqueueBatch('ab-min', addresses, undefined, abOptions('clicks', { minSample: 100 })),
    ).toMatchObject({
      enqueued: 0,
    })
    const { decision, done } = await h.queue.decideAbTest('ab-min')
    expect(done).toBe(true)
    expect(decision).toMatchObject({ winner: 0, reason: 'min-sample', numbers: { minSample: 100 } })
    expect(decision.numbers.variants.every((variant) => !variant.eligible)).toBe(true)
    const batch = await h.queue.getBatch('ab-min')
    expect(batch).toMatchObject({ total: 40, state: 'sending', abTest: { decision: { reason: 'min-sample' } } })
    await h.worker({ concurrency: 20 }).start()
    await h.transport.waitForCount(40)
    const rest = split('ab-min', addresses, 0.3).rest
    const subjects = subjectsByAddress(h)
    for (const address of rest) expect(subjects.get(address)).toBe('Subject A')
  })

  test('a content variant replaces the shared body; its data goes under each recipient', async () => {
    const h = harness(redis)
    const addresses = readers(60, 'v')
    await h.queue.enqueueBatch('ab-body', addresses, (address) => ({ to: address, data: { own: 1 } }), {
      subject: 'Same subject',
      html: '<p>Shared</p>',
      variants: [{ data: { offer: 'none' } }, { text: 'Body B', data: { offer: 'ten', own: 0 } }],
      test: { share: 0.5, decideAfter: '1h', metric: 'clicks' },
    })
    const keys = queueKeys(h.prefix)
    const jobs = await redis.xrange(keys.stream('low'), '-', '+')
    const { variants } = split('ab-body', addresses, 0.5)
    expect(jobs).toHaveLength(variants.flat().length)
    for (const [, fields] of jobs) {
      const job = JSON.parse(fields[fields.indexOf('job') + 1] as string)
      const variant = variants[1]?.includes(job.to[0].address) ? 1 : 0
      if (variant === 1) expect(job).toMatchObject({ text: 'Body B', data: { offer: 'ten', own: 1 } })
      else expect(job).toMatchObject({ html: '<p>Shared</p>', data: { offer: 'none', own: 1 } })
      if (variant === 1) expect(job.html).toBeUndefined()
    }
  })

  test('a drain that runs twice at once, or dies before trimming, enqueues every held recipient once', async () => {
    const h = harness(redis)
    const keys = queueKeys(h.prefix)
    const addresses = readers(3000, 'd')
    const result = await h.queue.enqueueBatch('ab-drain', addresses, undefined, abOptions('clicks', { share: 0.1 }))
    const held = result.held as number
    expect(held).toBeGreaterThan(2000)
    // A drain that died after enqueueing its first chunk, before trimming it.
    await redis.hset(keys.batch('ab-drain'), 'ab:decision', '{"winner":0,"reason":"min-sample","at":0}', 'ab:winner', 0)
    const stored = JSON.parse((await redis.hget(keys.batch('ab-drain'), 'ab:templates')) as string)
    const first = await redis.lrange(keys.abRest('ab-drain'), 0, 999)
    await enqueue(redis, keys, {
      now: Date.now(),
      idempotencyTtlSeconds: 60,
      records: winnerRecords(stored.templates[0], null, first, Date.now()),
    })
    const runs = await Promise.all([h.queue.decideAbTest('ab-drain'), h.queue.decideAbTest('ab-drain')])
    expect(runs.every((run) => run.done)).toBe(true)
    expect(runs[0].enqueued + runs[1].enqueued).toBe(held - 1000)
    const batch = await h.queue.getBatch('ab-drain')
    expect(batch).toMatchObject({ total: 3000, state: 'sending', abTest: { state: 'done', released: held } })
    expect(await redis.xlen(keys.stream('low'))).toBe(3000)
    expect(await redis.exists(keys.abRest('ab-drain'))).toBe(0)
    expect(await redis.zscore(keys.abTests, 'ab-drain')).toBeNull()
  })

  test('the test is due decideAfter after the batch starts; a call with another test is refused', async () => {
    const h = harness(redis)
    const keys = queueKeys(h.prefix)
    const before = Date.now()
    await h.queue.enqueueBatch('ab-due', readers(10, 'u'), undefined, abOptions('clicks', { decideAfter: '90m' }))
    const due = Number(await redis.zscore(keys.abTests, 'ab-due'))
    expect(due).toBeGreaterThanOrEqual(before + 90 * 60_000)
    expect(due).toBeLessThan(Date.now() + 90 * 60_000 + 1)
    expect((await h.queue.getBatch('ab-due'))?.abTest?.decideAt).toBe(due)
    await expect(
      h.queue.enqueueBatch('ab-due', readers(10, 'u'), undefined, abOptions('clicks', { share: 0.5 })),
    ).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'options.test' })
    await expect(
      h.queue.enqueueBatch('ab-due', readers(10, 'u'), undefined, { subject: 'x', text: 'x' }),
    ).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'options.variants',
    })
  })

  test('a cancelled test sends nothing more: its held recipients are dropped at the decision', async () => {
    const h = harness(redis)
    const keys = queueKeys(h.prefix)
    const result = await h.queue.enqueueBatch('ab-cancel', readers(50, 'c'), undefined, abOptions('clicks'))
    await h.queue.cancelBatch('ab-cancel')
    expect(await h.queue.decideAbTest('ab-cancel')).toMatchObject({ done: true, enqueued: 0 })
    expect(await redis.exists(keys.abRest('ab-cancel'))).toBe(0)
    const batch = await h.queue.getBatch('ab-cancel')
    expect(batch).toMatchObject({ state: 'cancelled', total: result.enqueued, abTest: { state: 'done', released: 0 } })
    expect(await redis.xlen(keys.stream('low'))).toBe(0)
  })

  test('bad options are named and nothing is written', async () => {
    const h = harness(redis)
    const fieldOf = async (options: Record<string, unknown>) => {
      const error = await h.queue.enqueueBatch('ab-bad', readers(3, 'b'), undefined, options).catch((e) => e)
      expect(error).toBeInstanceOf(MailstreamError)
      return (error as MailstreamError).field
    }
    const good = abOptions('clicks')
    expect(await fieldOf({ ...good, variants: [{ subject: 'A' }, { subject: 'B\nC' }] })).toBe(
      'options.variants.1.subject',
    )
    expect(await fieldOf({ ...good, test: { ...good.test, share: 0 } })).toBe('options.test.share')
    expect(await fieldOf({ ...good, test: { ...good.test, decideAfter: '3d' } })).toBe('options.test.decideAfter')
    expect(await fieldOf({ ...good, test: undefined })).toBe('options.test')
    expect(await h.queue.getBatch('ab-bad')).toBeNull()
    const timed = await h.queue
      .enqueueBatch('ab-timed', ['t@example.com'], (to) => ({ to, timeZone: 'Asia/Seoul' }), good)
      .catch((error) => error)
    expect(timed).toMatchObject({ code: 'E_VALIDATION', field: 'recipients.0.timeZone' })
    await expect(h.queue.decideAbTest('no-such-batch')).rejects.toMatchObject({ code: 'E_NOT_FOUND' })
  })
})
