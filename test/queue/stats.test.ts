import { describe, expect, test } from 'vitest'
import { createSesWebhookHandler, type EmailJobInput, TransportError } from '../../src/index.js'
import { sealBatch } from '../../src/lua/seal-batch.js'
import { queueInternals } from '../../src/queue/internals.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'
import { post, type SesEventInput, snsFixture, TOPIC_ARN } from '../helpers/sns.js'

const redis = connect()
const sns = snsFixture()

const zeroTotals = {
  sent: 0,
  failed: 0,
  suppressed: 0,
  retried: 0,
  throttled: 0,
  delivered: 0,
  bounced: 0,
  bouncedPermanent: 0,
  complained: 0,
  opened: 0,
  clicked: 0,
  rejected: 0,
  renderingFailed: 0,
  deliveryDelayed: 0,
  advertisingSent: 0,
}
const zeroRates = { deliveryRate: 0, bounceRate: 0, complaintRate: 0, openRate: 0, clickRate: 0 }
const idleStream = { length: 0, pending: 0, waiting: 0, lag: 0, oldestWaitingMs: 0, consumers: 0 }

describe('stats', () => {
  test('an empty queue: zeros everywhere, rates 0 when nothing was sent', async () => {
    const { queue } = harness(redis)
    expect(await queue.stats()).toEqual({
      streams: { high: idleStream, normal: idleStream, low: idleStream },
      delayed: 0,
      dead: 0,
      suppressed: 0,
      totals: zeroTotals,
      rates: zeroRates,
    })
    expect(await queue.batchStats('none')).toBeNull()
    await expect(queue.batchStats('bad id')).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'batchId' })
  })

  test('numbers match a scripted scenario exactly, globally and per batch', async () => {
    const { queue, transport, worker, settled, prefix } = harness(redis)
    // broken@ fails for good (dead); flaky@ fails once, then is sent (one retry).
    const send = transport.send.bind(transport)
    let flakyTries = 0
    transport.send = async (message, context) => {
      const to = message.to[0]?.address
      if (to === 'broken@example.com') throw new TransportError('550 no such user', { retry: 'never' })
      if (to === 'flaky@example.com' && flakyTries++ === 0)
        throw new TransportError('421 try later', { retry: 'later' })
      return send(message, context)
    }
    await queue.suppression.add('blocked@example.com', 'manual')

    const readers = [
      'reader0',
      'reader1',
      'reader2',
      'reader3',
      'reader4',
      'reader5',
      'reader6',
      'flaky',
      'broken',
      'blocked',
    ]
    const job = (name: string, batchId?: string): EmailJobInput => ({
      type: 'newsletter',
      to: `${name}@example.com`,
      subject: 'Issue 7',
      text: 'Hello',
      ...(batchId !== undefined && { batchId }),
    })
    const enqueued = await queue.enqueueMany([
      ...readers.map((name) => job(name, 'issue-7')),
      job('solo0'),
      job('solo1'),
    ])
    await sealBatch(redis, queueInternals(queue).keys, 'issue-7')
    const w = worker()
    await w.start()
    const final = await Promise.all(enqueued.map(({ id }) => settled(id)))
    expect(final.map((state) => state.status).sort()).toEqual([...Array(10).fill('sent'), 'dead', 'suppressed'].sort())

    // SES reports back through SNS.
    const handler = createSesWebhookHandler({
      queue,
      allowedTopicArns: [TOPIC_ARN],
      fetchCertificate: sns.fetchCertificate,
    })
    const sentTo = (name: string) => {
      const sent = transport.find({ to: `${name}@example.com` })
      if (!sent) throw new Error(`${name} was not sent`)
      return sent
    }
    const event = (type: SesEventInput['type'], name: string, extra: Partial<SesEventInput> = {}) => {
      const sent = sentTo(name)
      return sns.signedEvent({
        type,
        messageId: sent.messageId,
        jobId: sent.message.jobId,
        ...(sent.message.batchId !== undefined && { batchId: sent.message.batchId }),
        recipients: [`${name}@example.com`],
        ...extra,
      })
    }
    const sentNames = [...readers.slice(0, 8), 'solo0', 'solo1']
    const script = [
      ...sentNames.map((name) => event('Send', name)), // counted by nothing: the worker counted the send
      event('DeliveryDelay', 'reader4'),
      ...['reader0', 'reader1', 'reader2', 'reader3', 'reader4', 'reader5', 'flaky', 'solo0'].map((name) =>
        event('Delivery', name),
      ),
      event('Bounce', 'reader6', { bounceType: 'Permanent' }),
      event('Bounce', 'solo1', { bounceType: 'Transient' }),
      event('Complaint', 'reader0'),
      event('Open', 'reader0'),
      event('Open', 'reader0'), // a second open of one message: on the job, not in the counters
      event('Open', 'reader1'),
      event('Open', 'reader2'),
      event('Click', 'reader1'),
      event('Click', 'reader1'),
      event('Click', 'reader3'),
    ]
    for (const message of script) expect(await post(handler, message)).toMatchObject({ outcome: 'processed' })
    // SNS delivers some of them again: reader0's delivery, reader6's bounce, the complaint.
    for (const index of [11, 19, 21]) {
      expect(await post(handler, script[index] as Record<string, string>)).toMatchObject({ outcome: 'duplicate' })
    }

    const stats = await queue.stats()
    expect(stats.totals).toEqual({
      sent: 10,
      failed: 1,
      suppressed: 1,
      retried: 1,
      throttled: 0,
      delivered: 8,
      bounced: 2,
      bouncedPermanent: 1,
      complained: 1,
      opened: 3,
      clicked: 2,
      rejected: 0,
      renderingFailed: 0,
      deliveryDelayed: 1,
      advertisingSent: 0,
    })
    expect(stats.rates).toEqual({
      deliveryRate: 8 / 10,
      bounceRate: 2 / 10,
      complaintRate: 1 / 10,
      openRate: 3 / 10,
      clickRate: 2 / 10,
    })
    expect(stats).toMatchObject({ delayed: 0, dead: 1, suppressed: 3 })
    for (const stream of Object.values(stats.streams)) {
      expect(stream).toMatchObject({ length: 0, pending: 0, waiting: 0, lag: 0, oldestWaitingMs: 0 })
    }
    expect(stats.streams.normal.consumers).toBe(1)

    expect(await queue.batchStats('issue-7')).toEqual({
      batchId: 'issue-7',
      total: 10,
      cancelled: 0,
      finished: true,
      totals: {
        sent: 8,
        failed: 1,
        suppressed: 1,
        delivered: 7,
        bounced: 1,
        bouncedPermanent: 1,
        complained: 1,
        opened: 3,
        clicked: 2,
        rejected: 0,
        renderingFailed: 0,
        deliveryDelayed: 1,
      },
      rates: { deliveryRate: 7 / 8, bounceRate: 1 / 8, complaintRate: 1 / 8, openRate: 3 / 8, clickRate: 2 / 8 },
    })
    expect((await queue.getStatus(sentTo('reader0').message.jobId))?.delivery).toEqual({
      state: 'complained',
      deliveredAt: expect.any(Number),
      complainedAt: expect.any(Number),
      openedAt: expect.any(Number),
      opens: 2,
      clicks: 0,
    })
    expect((await queue.getStatus(sentTo('reader4').message.jobId))?.delivery?.state).toBe('delivered')
    expect((await queue.suppression.list()).items.map((item) => item.address).sort()).toEqual([
      'blocked@example.com',
      'reader0@example.com',
      'reader6@example.com',
    ])

    // With no worker running, new jobs wait: the stream shows them and how long the oldest has waited.
    await w.stop()
    await queue.enqueueMany([job('late0'), job('late1')])
    await new Promise((resolve) => setTimeout(resolve, 60))
    const later = await queue.stats()
    // The worker stopped cleanly holding nothing: it left the group, so no consumer is counted.
    expect(later.streams.normal).toMatchObject({ length: 2, pending: 0, waiting: 2, lag: 2, consumers: 0 })
    expect(later.streams.normal.oldestWaitingMs).toBeGreaterThanOrEqual(50)
    expect(later.streams.normal.oldestWaitingMs).toBeLessThan(10_000)
    expect(later.totals).toEqual(stats.totals)
    expect(await redis.hget(`${prefix}:stats`, 'sent')).toBe('10')
  })
})
