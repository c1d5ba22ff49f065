import { randomUUID } from 'node:crypto'
import { describe, expect, test } from 'vitest'
import {
  createSesWebhookHandler,
  type EmailQueue,
  type ProviderPaceEvent,
  type SesWebhookOptions,
} from '../../src/index.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'
import { notification, post, sesEvent, snsFixture, TOPIC_ARN } from '../helpers/sns.js'

const redis = connect()
const sns = snsFixture()

function handlerFor(queue: EmailQueue, options: Partial<SesWebhookOptions> = {}) {
  return createSesWebhookHandler({
    queue,
    allowedTopicArns: [TOPIC_ARN],
    fetchCertificate: sns.fetchCertificate,
    ...options,
  })
}

/** A signed DeliveryDelay notification of `delayType` for `recipients`. */
function delay(delayType: string, recipients: string[]) {
  const record = sesEvent({ type: 'DeliveryDelay', messageId: randomUUID(), recipients })
  ;(record.deliveryDelay as Record<string, unknown>).delayType = delayType
  return sns.sign(notification(record))
}

/** The slow-down state hash of a provider, as the worker's pace call reads it (DESIGN: the limiter key's slot). */
function stateKey(limiterKey: string, provider: string) {
  const key = `rate:limit:${limiterKey}`
  return /\{[^}]+\}/.test(key) ? `${key}:provider:${provider}:state` : `{${key}}:provider:${provider}:state`
}
const factorOf = async (key: string) => {
  const f = await redis.hget(key, 'f')
  return f === null ? 1 : Number(f)
}

describe('SES DeliveryDelay slows the provider down', () => {
  test('an IPFailure for a naver.com recipient halves naver only; a MailboxFull changes nothing', async () => {
    const { queue, prefix } = harness(redis)
    // guardMs 0: a second decrease would show, so a redelivery that counted again would too.
    const handler = handlerFor(queue, { providerPacing: { slowDown: { guardMs: 0 } } })
    const naver = stateKey(`${prefix}:send`, 'naver')
    const gmail = stateKey(`${prefix}:send`, 'gmail')

    expect(await post(handler, delay('MailboxFull', ['full@naver.com']))).toMatchObject({ outcome: 'processed' })
    expect(await post(handler, delay('TransientCommunicationFailure', ['a@naver.com']))).toMatchObject({ status: 200 })
    expect(await redis.exists(naver)).toBe(0)

    const throttled = delay('IPFailure', ['reader@naver.com', 'b@naver.com', 'boss@company.example'])
    expect(await post(handler, throttled)).toMatchObject({ status: 200, outcome: 'processed' })
    expect(await factorOf(naver)).toBe(0.5)
    expect(await redis.pttl(naver)).toBeGreaterThan(0)
    expect(await redis.exists(gmail)).toBe(0)
    // SNS redelivers the same notification: not slowed down twice.
    expect(await post(handler, throttled)).toMatchObject({ outcome: 'duplicate' })
    expect(await factorOf(naver)).toBe(0.5)
    expect(await redis.hget(`${prefix}:metrics`, 'provider_slowdown:naver')).toBe('1')
    // `other` is many destinations: a company domain slows nothing down.
    expect(await redis.exists(stateKey(`${prefix}:send`, 'other'))).toBe(0)

    // SpamDetected and SendingDeferral count too, each provider of the recipients once.
    await post(handler, delay('SpamDetected', ['c@naver.com', 'g@gmail.com', 'h@googlemail.com']))
    expect(await factorOf(naver)).toBe(0.25)
    expect(await factorOf(gmail)).toBe(0.5)
    await post(handler, delay('SendingDeferral', ['k@daum.net']))
    expect(await factorOf(stateKey(`${prefix}:send`, 'kakao'))).toBe(0.5)
    const metrics = await queue.metrics()
    expect(metrics).toContain('mailstream_provider_slowdowns_total{provider="naver"} 2')
    expect(metrics).toContain('mailstream_provider_slowdowns_total{provider="gmail"} 1')
  })

  test('the workers pace naver by the factor the webhook lowered, and raise it back', async () => {
    const { queue, worker, transport } = harness(redis)
    const slowDown = { cooldownMs: 300, step: 0.25 }
    const handler = handlerFor(queue, { providerPacing: { slowDown } })
    await post(handler, delay('IPFailure', ['reader@naver.com']))
    const w = worker({ rateLimit: { perSecond: 1000 }, providerRates: { naver: 40 }, providerPacing: { slowDown } })
    const events: ProviderPaceEvent[] = []
    w.on('providerPace', (event) => events.push(event))
    await queue.enqueueMany(Array.from({ length: 40 }, (_, i) => testJob({ to: `n${i}@naver.com` })))
    await w.start()
    await waitUntil(async () => events.some((event) => event.factor === 1), 10_000, 'naver back at full rate')
    // The worker heard no reply of its own: it saw the webhook's 0.5 rise to 0.75, then 1.
    expect(events.map((event) => [event.provider, event.factor, event.reason])).toEqual([
      ['naver', 0.75, 'recover'],
      ['naver', 1, 'recover'],
    ])
    await transport.waitForCount(40)
  })

  test("the workers' rateLimit.key is followed; providerPacing: false turns it off; bad options throw", async () => {
    const { queue, prefix } = harness(redis)
    const key = `shared-${randomUUID()}`
    await post(handlerFor(queue, { providerPacing: { rateLimitKey: key } }), delay('IPFailure', ['x@naver.com']))
    expect(await factorOf(stateKey(key, 'naver'))).toBe(0.5)
    expect(await redis.exists(stateKey(`${prefix}:send`, 'naver'))).toBe(0)

    const { queue: offQueue, prefix: offPrefix } = harness(redis)
    const off = handlerFor(offQueue, { providerPacing: false })
    expect(await post(off, delay('IPFailure', ['y@naver.com']))).toMatchObject({ outcome: 'processed' })
    expect(await redis.exists(stateKey(`${offPrefix}:send`, 'naver'))).toBe(0)

    expect(() => handlerFor(queue, { providerPacing: { slowDown: { decrease: 2 } } })).toThrow(/providerPacing/)
    expect(() => handlerFor(queue, { providerPacing: { rateLimitKey: 'has space' } })).toThrow(/providerPacing/)
  })
})
