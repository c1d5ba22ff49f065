import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { describe, expect, test, vi } from 'vitest'
import {
  createEmailQueue,
  createSesWebhookHandler,
  type EmailQueue,
  isSnsUrl,
  type SesEvent,
  type SesWebhookOptions,
} from '../../src/index.js'
import { encodeTagValue } from '../../src/transports/ses.js'
import { isSnsCertificateUrl, isSnsSubscribeUrl } from '../../src/webhooks/sns.js'
import { harness } from '../helpers/queue.js'
import { connect, keysOf, redisUrl } from '../helpers/redis.js'
import { CERT_URL, notification, post, sesEvent, snsFixture, TOPIC_ARN } from '../helpers/sns.js'

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

/** Sends one job through a worker and resolves its id and SES message id. */
async function sendOne(h: ReturnType<typeof harness>, to: string, extra: { batchId?: string; id?: string } = {}) {
  const { id } = await h.queue.enqueue({ type: 'newsletter', to, subject: 'Issue', text: 'Hello', ...extra })
  const sent = await h.transport.waitFor({ jobId: id })
  await h.settled(id)
  return { id, messageId: sent.messageId }
}

describe('SNS signatures', () => {
  test('valid SignatureVersion 1 and 2 notifications are accepted; the certificate is fetched once', async () => {
    const { queue } = harness(redis)
    const handler = handlerFor(queue)
    sns.fetchCertificate.mockClear()
    const v1 = sns.sign(notification(sesEvent({ type: 'Delivery', messageId: randomUUID() })), { version: '1' })
    const v2 = sns.sign(notification(sesEvent({ type: 'Delivery', messageId: randomUUID() })), { version: '2' })
    expect(v1.SignatureVersion).toBe('1')
    expect(await post(handler, v1)).toMatchObject({ status: 200, outcome: 'processed' })
    expect(await post(handler, v2)).toMatchObject({ status: 200, outcome: 'processed' })
    expect((await queue.stats()).totals.delivered).toBe(2)
    expect(sns.fetchCertificate).toHaveBeenCalledTimes(1)
    expect(sns.fetchCertificate).toHaveBeenCalledWith(CERT_URL)
  })

  test('the body may come as text, bytes or a parsed object', async () => {
    const { queue } = harness(redis)
    const handler = handlerFor(queue)
    const messages = [0, 1, 2].map(() => sns.signedEvent({ type: 'Delivery', messageId: randomUUID() }))
    const bodies = [
      JSON.stringify(messages[0]),
      new TextEncoder().encode(JSON.stringify(messages[1])),
      structuredClone(messages[2]),
    ]
    for (const body of bodies) expect(await handler.handle({ body })).toMatchObject({ status: 200 })
    expect((await queue.stats()).totals.delivered).toBe(3)
  })

  test('forged, altered, misdirected or foreign messages are rejected and change nothing', async () => {
    const h = harness(redis)
    await h.worker().start()
    const { id, messageId } = await sendOne(h, 'victim@example.com', { batchId: 'forged' })
    const handler = handlerFor(h.queue)
    sns.fetchCertificate.mockClear()
    const bounce = (overrides = {}) =>
      notification(
        sesEvent({
          type: 'Bounce',
          bounceType: 'Permanent',
          messageId,
          jobId: id,
          batchId: 'forged',
          recipients: ['victim@example.com'],
        }),
        overrides,
      )
    const valid = sns.sign(bounce())
    const otherKey = snsFixture()
    const cases: [string, unknown, number][] = [
      ['altered message', { ...valid, Message: valid.Message?.replace('Permanent', 'Transient') }, 403],
      ['altered MessageId', { ...valid, MessageId: randomUUID() }, 403],
      [
        'altered v1 message',
        { ...sns.sign(bounce(), { version: '1' }), Timestamp: new Date(Date.now() - 1000).toISOString() },
        403,
      ],
      ['signed by another key', otherKey.sign(bounce()), 403],
      ['no signature', { ...valid, Signature: undefined }, 403],
      ['unknown signature version', { ...valid, SignatureVersion: '3' }, 403],
      ['http certificate URL', sns.sign(bounce(), { certUrl: CERT_URL.replace('https:', 'http:') }), 403],
      [
        's3 certificate URL',
        sns.sign(bounce(), { certUrl: 'https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/cert.pem' }),
        403,
      ],
      ['s3 bucket host', sns.sign(bounce(), { certUrl: 'https://sns.s3.amazonaws.com/cert.pem' }), 403],
      [
        'lookalike host',
        sns.sign(bounce(), { certUrl: 'https://sns.us-east-1.amazonaws.com.evil.example/c.pem' }),
        403,
      ],
      ['user info', sns.sign(bounce(), { certUrl: 'https://sns.us-east-1.amazonaws.com@evil.example/c.pem' }), 403],
      ['explicit port', sns.sign(bounce(), { certUrl: 'https://sns.us-east-1.amazonaws.com:8443/c.pem' }), 403],
      ['unknown topic', sns.sign(bounce({ TopicArn: 'arn:aws:sns:us-east-1:999999999999:other' })), 403],
      ['too old', sns.sign(bounce({ Timestamp: new Date(Date.now() - 2 * 86_400_000).toISOString() })), 403],
      ['not JSON', '{"Type":', 400],
      ['too large', `${' '.repeat(1024 * 1024)}{}`, 413],
      ['not SNS', { hello: 'world' }, 400],
    ]
    for (const [name, body, status] of cases) {
      const response = await handler.handle({ body: typeof body === 'string' ? body : JSON.stringify(body) })
      expect({ name, status: response.status, outcome: response.outcome }).toEqual({
        name,
        status,
        outcome: 'rejected',
      })
      expect(response.error?.code).toBe('E_WEBHOOK')
    }
    // Only the real SNS URL was ever fetched: no request to any host a message named.
    expect(sns.fetchCertificate.mock.calls.every(([url]) => url === CERT_URL)).toBe(true)
    expect(await h.queue.suppression.has('victim@example.com')).toBe(false)
    expect(await redis.hgetall(`${h.prefix}:stats`)).toEqual({ sent: '1' })
    const batch = await redis.hgetall(`${h.prefix}:batch:forged`)
    expect(batch).toMatchObject({ total: '1', sent: '1' })
    expect(Object.keys(batch).filter((field) => /delivered|bounced|complained|opened|clicked/.test(field))).toEqual([])
    expect((await h.queue.getStatus(id))?.delivery).toBeUndefined()
    expect((await keysOf(redis, h.prefix)).filter((key) => /:(sns|ses):/.test(key))).toEqual([])

    // The untouched original still goes through.
    expect(await post(handler, valid)).toMatchObject({ status: 200, outcome: 'processed' })
    expect(await h.queue.suppression.has('victim@example.com')).toBe(true)
  })

  test('a certificate that cannot be fetched is a 500 (SNS retries), not cached', async () => {
    const { queue } = harness(redis)
    const fetchCertificate = vi
      .fn()
      .mockRejectedValueOnce(new Error('network down'))
      .mockResolvedValue(sns.certificate.pem)
    const handler = handlerFor(queue, { fetchCertificate })
    const message = sns.signedEvent({ type: 'Delivery', messageId: randomUUID() })
    expect(await post(handler, message)).toMatchObject({ status: 500, outcome: 'failed' })
    expect((await queue.stats()).totals.delivered).toBe(0)
    expect(await post(handler, message)).toMatchObject({ status: 200, outcome: 'processed' })
    expect(fetchCertificate).toHaveBeenCalledTimes(2)
  })

  test('isSnsUrl accepts only https on sns.<region>.amazonaws.com', () => {
    expect(isSnsUrl('https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-a.pem')).toBe(true)
    expect(isSnsUrl('https://sns.cn-north-1.amazonaws.com.cn/a.pem')).toBe(true)
    expect(isSnsUrl('https://sns.us-gov-west-1.amazonaws.com/a.pem')).toBe(true)
    for (const url of [
      'http://sns.eu-west-1.amazonaws.com/a.pem',
      'https://sns.amazonaws.com/a.pem',
      'https://s3.amazonaws.com/a.pem',
      'https://sns.s3.amazonaws.com/a.pem',
      'https://sns.s3-us-west-2.amazonaws.com/a.pem',
      'https://sns.s3.us-west-2.amazonaws.com/a.pem',
      'https://sns.eu-west-1.amazonaws.com.attacker.net/a.pem',
      'https://attacker.net\\@sns.eu-west-1.amazonaws.com/a.pem',
      'https://x:y@sns.eu-west-1.amazonaws.com/a.pem',
      'https://sns.eu-west-1.amazonaws.com:444/a.pem',
      'https://SNS.eu_west.amazonaws.com/a.pem',
      'file:///etc/passwd',
      'not a url',
    ]) {
      expect({ url, ok: isSnsUrl(url) }).toEqual({ url, ok: false })
    }
  })

  test('isSnsCertificateUrl accepts only https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem', () => {
    for (const url of [
      CERT_URL,
      'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-b95095beb82e8f6a046b3aafc7f4149a.pem',
      'https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0123456789abcdef.pem',
      'https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem',
    ]) {
      expect({ url, ok: isSnsCertificateUrl(url) }).toEqual({ url, ok: true })
    }
    const hex = '0123456789abcdef0123456789abcdef'
    for (const url of [
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem?x=1`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem?`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem#x`,
      `https://sns.us-east-1.amazonaws.com/anything/SimpleNotificationService-${hex}.pem`,
      `https://sns.us-east-1.amazonaws.com/x/../SimpleNotificationService-${hex}.pem`,
      `https://sns.us-east-1.amazonaws.com/%53impleNotificationService-${hex}.pem`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex.toUpperCase()}.pem`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem/`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.crt`,
      'https://sns.us-east-1.amazonaws.com/?Action=ListTopics',
      `https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem`,
      `https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-${hex}.pem`,
      `https://a@sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem`,
      `http://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem`,
      `https://sns.s3.amazonaws.com/SimpleNotificationService-${hex}.pem`,
      `https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-${hex}.pem`,
      `https://sns.us-east-1.amazonaws.com/SimpleNotificationService-${hex}.pem\n`,
      42,
    ]) {
      expect({ url, ok: isSnsCertificateUrl(url) }).toEqual({ url, ok: false })
    }
  })

  test('a certificate URL with another path, a query or a fragment is refused before any download', async () => {
    const { queue } = harness(redis)
    const handler = handlerFor(queue)
    sns.fetchCertificate.mockClear()
    const event = () => notification(sesEvent({ type: 'Complaint', messageId: randomUUID() }))
    for (const certUrl of [
      `${CERT_URL}?cache=${randomUUID()}`,
      `${CERT_URL}#x`,
      CERT_URL.replace('/SimpleNotificationService', '/x/../SimpleNotificationService'),
      CERT_URL.replace('SimpleNotificationService-', 'any/path-'),
      'https://sns.ap-northeast-2.amazonaws.com/?Action=Publish&Message=x',
    ]) {
      const response = await post(handler, sns.sign(event(), { certUrl }))
      expect({ certUrl, status: response.status, outcome: response.outcome }).toEqual({
        certUrl,
        status: 403,
        outcome: 'rejected',
      })
    }
    expect(sns.fetchCertificate).not.toHaveBeenCalled()
    expect((await queue.stats()).totals.complained).toBe(0)
  })

  test('forged messages naming ever new certificates start at most 10 downloads a minute', async () => {
    const { queue } = harness(redis)
    const fetchCertificate = vi.fn(async (url: string) => {
      throw new Error(`404 for ${url}`)
    })
    const handler = handlerFor(queue, { fetchCertificate })
    const statuses = new Set<number>()
    for (let index = 0; index < 40; index++) {
      const certUrl = CERT_URL.replace(/-[0-9a-f]+\.pem$/, `-${index.toString(16).padStart(32, '0')}.pem`)
      const message = sns.sign(notification(sesEvent({ type: 'Complaint', messageId: randomUUID() })), { certUrl })
      statuses.add((await post(handler, message)).status)
    }
    expect(fetchCertificate).toHaveBeenCalledTimes(10)
    // Refused downloads answer 500: a real new certificate is retried by SNS, not dropped.
    expect([...statuses]).toEqual([500])
  })

  test('verifySignature: false skips the signature but not the topic check', async () => {
    const { queue } = harness(redis)
    const handler = handlerFor(queue, { verifySignature: false })
    const unsigned = notification(sesEvent({ type: 'Delivery', messageId: randomUUID() }))
    expect(await post(handler, unsigned)).toMatchObject({ status: 200, outcome: 'processed' })
    expect(await post(handler, { ...unsigned, MessageId: randomUUID(), TopicArn: `${TOPIC_ARN}-x` })).toMatchObject({
      status: 403,
    })
  })
})

describe('subscriptions', () => {
  const confirmation = (subscribeUrl: string, type = 'SubscriptionConfirmation') =>
    sns.sign({
      Type: type,
      MessageId: randomUUID(),
      Token: 'token-123',
      TopicArn: TOPIC_ARN,
      Message: 'You have chosen to subscribe to the topic.',
      SubscribeURL: subscribeUrl,
      Timestamp: new Date().toISOString(),
    })
  const subscribeUrl = `https://sns.ap-northeast-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=${TOPIC_ARN}&Token=token-123`

  test('a verified confirmation on an allowed topic is confirmed by fetching its SubscribeURL', async () => {
    const { queue } = harness(redis)
    const fetch = vi.fn(async () => new Response('<ConfirmSubscriptionResponse/>'))
    const onSubscription = vi.fn()
    const handler = handlerFor(queue, { fetch, onSubscription })
    expect(await post(handler, confirmation(subscribeUrl))).toMatchObject({ status: 200, outcome: 'confirmed' })
    expect(fetch).toHaveBeenCalledTimes(1)
    expect(fetch.mock.calls[0]?.[0 as never]).toBe(subscribeUrl)
    expect(onSubscription).toHaveBeenCalledWith(
      expect.objectContaining({
        type: 'SubscriptionConfirmation',
        topicArn: TOPIC_ARN,
        subscribeUrl,
        token: 'token-123',
      }),
    )
  })

  test('a SubscribeURL off the SNS hosts, or not a ConfirmSubscription for the topic, is never fetched', async () => {
    const { queue } = harness(redis)
    const fetch = vi.fn(async () => new Response('ok'))
    const handler = handlerFor(queue, { fetch })
    const sns2 = 'https://sns.ap-northeast-2.amazonaws.com'
    for (const url of [
      'https://attacker.example/confirm',
      'http://sns.ap-northeast-2.amazonaws.com/?Action=x',
      subscribeUrl.replace('https:', 'http:'),
      subscribeUrl.replace(`${sns2}/`, `${sns2}/some/path`),
      subscribeUrl.replace('Action=ConfirmSubscription', 'Action=Unsubscribe'),
      subscribeUrl.replace(TOPIC_ARN, 'arn:aws:sns:ap-northeast-2:999999999999:other'),
      `${subscribeUrl}&TopicArn=arn:aws:sns:ap-northeast-2:999999999999:other`,
      `${subscribeUrl}#x`,
      subscribeUrl.replace(sns2, `${sns2}:8443`),
    ]) {
      expect(await post(handler, confirmation(url))).toMatchObject({ status: 403, outcome: 'rejected' })
    }
    expect(fetch).not.toHaveBeenCalled()
  })

  test('isSnsSubscribeUrl', () => {
    expect(isSnsSubscribeUrl(subscribeUrl, TOPIC_ARN)).toBe(true)
    expect(isSnsSubscribeUrl(subscribeUrl, `${TOPIC_ARN}-other`)).toBe(false)
    expect(isSnsSubscribeUrl(42, TOPIC_ARN)).toBe(false)
  })

  test("with allowedTopicArns: 'any' a confirmation is surfaced to the host, not confirmed", async () => {
    const { queue } = harness(redis)
    const fetch = vi.fn(async () => new Response('ok'))
    const onSubscription = vi.fn()
    const handler = createSesWebhookHandler({
      queue,
      allowedTopicArns: 'any',
      fetchCertificate: sns.fetchCertificate,
      fetch,
      onSubscription,
    })
    expect(await post(handler, confirmation(subscribeUrl))).toMatchObject({ status: 200, outcome: 'subscription' })
    expect(await post(handler, confirmation(subscribeUrl, 'UnsubscribeConfirmation'))).toMatchObject({
      status: 200,
      outcome: 'unsubscribe',
    })
    expect(fetch).not.toHaveBeenCalled()
    expect(onSubscription).toHaveBeenCalledTimes(2)
    expect(() => createSesWebhookHandler({ queue, allowedTopicArns: 'any', confirmSubscriptions: true })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'confirmSubscriptions' }),
    )
  })

  test('allowedTopicArns is required; only the explicit opt-out accepts every topic', async () => {
    const { queue } = harness(redis)
    for (const allowedTopicArns of [undefined, [], 'all', '*', null]) {
      const options = {
        queue,
        fetchCertificate: sns.fetchCertificate,
        allowedTopicArns,
      } as unknown as SesWebhookOptions
      let error: unknown
      try {
        createSesWebhookHandler(options)
      } catch (caught) {
        error = caught
      }
      expect({ allowedTopicArns, error }).toEqual({
        allowedTopicArns,
        error: expect.objectContaining({ code: 'E_CONFIG', field: 'allowedTopicArns' }),
      })
      expect((error as Error).message).toContain('allowedTopicArns')
    }
    // A genuinely signed notification from a topic of someone else's is accepted only with 'any'.
    const foreign = () =>
      sns.sign(
        notification(sesEvent({ type: 'Complaint', messageId: randomUUID(), recipients: ['victim@example.com'] }), {
          TopicArn: 'arn:aws:sns:us-east-1:999999999999:attacker',
        }),
      )
    expect(await post(handlerFor(queue), foreign())).toMatchObject({ status: 403, outcome: 'rejected' })
    expect(await queue.suppression.has('victim@example.com')).toBe(false)
    const anyTopic = handlerFor(queue, { allowedTopicArns: 'any' })
    expect(await post(anyTopic, foreign())).toMatchObject({ status: 200, outcome: 'processed' })
    expect(await queue.suppression.has('victim@example.com')).toBe(true)
  })

  test('options are validated', () => {
    const { queue } = harness(redis)
    expect(() => createSesWebhookHandler({ queue, allowedTopicArns: ['not-an-arn'] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'allowedTopicArns.0' }),
    )
    expect(() => createSesWebhookHandler({ queue: {} as EmailQueue, allowedTopicArns: [TOPIC_ARN] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'queue' }),
    )
  })
})

describe('SES events', () => {
  test('a permanent bounce suppresses the address, and the next job to it is not sent', async () => {
    const h = harness(redis)
    await h.worker().start()
    const handler = handlerFor(h.queue)
    const first = await sendOne(h, 'gone@example.com')
    const response = await post(
      handler,
      sns.signedEvent({
        type: 'Bounce',
        bounceType: 'Permanent',
        messageId: first.messageId,
        jobId: first.id,
        recipients: ['Gone@Example.com'],
      }),
    )
    expect(response).toMatchObject({ status: 200, outcome: 'processed' })
    expect(await h.queue.suppression.has('gone@example.com')).toBe(true)
    const { items } = await h.queue.suppression.list()
    expect(items).toEqual([
      { address: 'gone@example.com', reason: 'bounce (Permanent/General)', at: expect.any(Number) },
    ])
    expect(await h.queue.getStatus(first.id)).toMatchObject({
      status: 'sent',
      delivery: { state: 'bounced', bounceType: 'Permanent', bouncedAt: expect.any(Number), opens: 0, clicks: 0 },
    })

    const next = await h.queue.enqueue({ type: 'newsletter', to: 'GONE@example.com', subject: 'Issue 2', text: 'Hi' })
    expect(await h.settled(next.id)).toMatchObject({ status: 'suppressed' })
    expect(h.transport.filter({ jobId: next.id })).toHaveLength(0)
    expect(h.transport.messages).toHaveLength(1)
  })

  test('a transient bounce does not suppress', async () => {
    const h = harness(redis)
    await h.worker().start()
    const handler = handlerFor(h.queue)
    const first = await sendOne(h, 'full@example.com')
    await post(
      handler,
      sns.signedEvent({
        type: 'Bounce',
        bounceType: 'Transient',
        messageId: first.messageId,
        jobId: first.id,
        recipients: ['full@example.com'],
      }),
    )
    expect(await h.queue.suppression.has('full@example.com')).toBe(false)
    expect((await h.queue.getStatus(first.id))?.delivery).toMatchObject({ state: 'bounced', bounceType: 'Transient' })
    const stats = await h.queue.stats()
    expect(stats.totals).toMatchObject({ bounced: 1, bouncedPermanent: 0 })
    const next = await sendOne(h, 'full@example.com')
    expect(await h.queue.getStatus(next.id)).toMatchObject({ status: 'sent' })
  })

  test('a complaint suppresses the complaining address', async () => {
    const h = harness(redis)
    await h.worker().start()
    const handler = handlerFor(h.queue)
    const first = await sendOne(h, 'angry@example.com')
    await post(
      handler,
      sns.signedEvent({
        type: 'Delivery',
        messageId: first.messageId,
        jobId: first.id,
        recipients: ['angry@example.com'],
      }),
    )
    await post(
      handler,
      sns.signedEvent({
        type: 'Complaint',
        messageId: first.messageId,
        jobId: first.id,
        recipients: ['angry@example.com'],
      }),
    )
    expect(await h.queue.suppression.has('angry@example.com')).toBe(true)
    expect((await h.queue.getStatus(first.id))?.delivery).toMatchObject({
      state: 'complained',
      deliveredAt: expect.any(Number),
      complainedAt: expect.any(Number),
    })
    const next = await h.queue.enqueue({ type: 'newsletter', to: 'angry@example.com', subject: 'Again', text: 'Hi' })
    expect(await h.settled(next.id)).toMatchObject({ status: 'suppressed' })
  })

  test('duplicates of one SNS message count once, even when they arrive together', async () => {
    const h = harness(redis)
    await h.worker().start()
    const handler = handlerFor(h.queue)
    const first = await sendOne(h, 'reader@example.com', { batchId: 'dup' })
    const complaint = sns.signedEvent({
      type: 'Complaint',
      messageId: first.messageId,
      jobId: first.id,
      batchId: 'dup',
    })
    const responses = await Promise.all([1, 2, 3, 4].map(() => post(handler, complaint)))
    expect(responses.map((response) => response.outcome).sort()).toEqual([
      'duplicate',
      'duplicate',
      'duplicate',
      'processed',
    ])
    expect(responses.every((response) => response.status === 200)).toBe(true)
    expect(await post(handler, complaint)).toMatchObject({ status: 200, outcome: 'duplicate' })
    expect((await h.queue.stats()).totals.complained).toBe(1)
    expect((await h.queue.batchStats('dup'))?.totals.complained).toBe(1)
    expect(await redis.ttl(`${h.prefix}:sns:${complaint.MessageId}`)).toBeGreaterThan(86_000)
  })

  test('opens and clicks: every event on the job, once per message in the counters', async () => {
    const h = harness(redis)
    await h.worker().start()
    const handler = handlerFor(h.queue)
    const first = await sendOne(h, 'reader@example.com', { batchId: 'eng' })
    for (const type of ['Open', 'Open', 'Open', 'Click', 'Click'] as const) {
      // Distinct SNS messages (a reader opening three times), not redeliveries.
      expect(await post(handler, sns.signedEvent({ type, messageId: first.messageId, jobId: first.id }))).toMatchObject(
        {
          outcome: 'processed',
        },
      )
    }
    expect((await h.queue.getStatus(first.id))?.delivery).toMatchObject({
      opens: 3,
      clicks: 2,
      openedAt: expect.any(Number),
      clickedAt: expect.any(Number),
    })
    expect((await h.queue.stats()).totals).toMatchObject({ opened: 1, clicked: 1 })
    expect((await h.queue.batchStats('eng'))?.totals).toMatchObject({ opened: 1, clicked: 1 })
  })

  test('an event for a job whose status expired still counts for its batch and suppresses', async () => {
    const h = harness(redis)
    await h.worker().start()
    const handler = handlerFor(h.queue)
    const first = await sendOne(h, 'old@example.com', { batchId: 'old-issue' })
    await redis.del(`${h.prefix}:status:${first.id}`)
    const events: SesEvent[] = []
    const withHook = handlerFor(h.queue, { onEvent: (event) => void events.push(event) })
    await post(
      withHook,
      sns.signedEvent({
        type: 'Bounce',
        messageId: first.messageId,
        jobId: first.id,
        batchId: 'old-issue',
        recipients: ['old@example.com'],
      }),
    )
    expect(await redis.exists(`${h.prefix}:status:${first.id}`)).toBe(0)
    expect(await h.queue.suppression.has('old@example.com')).toBe(true)
    expect((await h.queue.batchStats('old-issue'))?.totals).toMatchObject({ bounced: 1, bouncedPermanent: 1 })
    expect(events[0]).toMatchObject({
      type: 'bounce',
      jobId: first.id,
      batchId: 'old-issue',
      suppressed: ['old@example.com'],
    })
    // A batch hash that does not exist is not created by an event.
    await post(
      handler,
      sns.signedEvent({ type: 'Delivery', messageId: randomUUID(), jobId: 'gone', batchId: 'never-existed' }),
    )
    expect(await redis.exists(`${h.prefix}:batch:never-existed`)).toBe(0)
    expect((await h.queue.stats()).totals).toMatchObject({ bounced: 1, delivered: 1 })
  })

  test('job and batch ids outside the SES tag alphabet are found through their decoded form', async () => {
    const h = harness(redis)
    await h.worker().start()
    const first = await sendOne(h, 'reader@example.com', { id: 'order:42', batchId: 'issue:7' })
    const events: SesEvent[] = []
    const handler = handlerFor(h.queue, { onEvent: (event) => void events.push(event) })
    await post(
      handler,
      sns.signedEvent({
        type: 'Delivery',
        messageId: first.messageId,
        jobId: encodeTagValue('order:42'),
        batchId: encodeTagValue('issue:7'),
      }),
    )
    expect((await h.queue.getStatus('order:42'))?.delivery).toMatchObject({ state: 'delivered' })
    expect((await h.queue.batchStats('issue:7'))?.totals.delivered).toBe(1)
    expect(events[0]).toMatchObject({ jobId: 'order:42', batchId: 'issue:7' })

    // A host-supplied decoder for another encoding.
    const custom = handlerFor(h.queue, { decodeTagValue: (value) => value.replace(/--/g, ':') })
    await post(custom, sns.signedEvent({ type: 'Open', messageId: first.messageId, jobId: 'order--42' }))
    expect((await h.queue.getStatus('order:42'))?.delivery).toMatchObject({ opens: 1 })
  })

  test('identity notifications (no tags) count globally and suppress', async () => {
    const { queue } = harness(redis)
    const handler = handlerFor(queue)
    const events: SesEvent[] = []
    const withHook = handlerFor(queue, { onEvent: (event) => void events.push(event) })
    await post(handler, sns.signedEvent({ type: 'Delivery', messageId: 'ses-1', identity: true }))
    await post(
      withHook,
      sns.signedEvent({ type: 'Complaint', messageId: 'ses-1', identity: true, recipients: ['x@example.com'] }),
    )
    expect((await queue.stats()).totals).toMatchObject({ delivered: 1, complained: 1 })
    expect(await queue.suppression.has('x@example.com')).toBe(true)
    expect(events[0]).toMatchObject({ type: 'complaint', messageId: 'ses-1', recipients: ['x@example.com'] })
    expect(events[0]?.jobId).toBeUndefined()
  })

  test('notifications that are not SES events are acknowledged and ignored', async () => {
    const { queue, prefix } = harness(redis)
    const handler = handlerFor(queue)
    const other = sns.sign(notification({ hello: 'world' }))
    const subscription = sns.sign(notification({ eventType: 'Subscription', mail: { messageId: 'm-1' } }))
    expect(await post(handler, other)).toMatchObject({ status: 200, outcome: 'ignored' })
    expect(await post(handler, subscription)).toMatchObject({ status: 200, outcome: 'ignored' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('onEvent gets the normalised event after Redis is updated; if it throws, SNS may retry without double counting', async () => {
    const h = harness(redis)
    await h.worker().start()
    const first = await sendOne(h, 'reader@example.com', { batchId: 'hook' })
    const seen: { event: SesEvent; delivered: number }[] = []
    let failures = 1
    const handler = handlerFor(h.queue, {
      async onEvent(event) {
        seen.push({ event, delivered: (await h.queue.stats()).totals.delivered })
        if (failures-- > 0) throw new Error('log database down')
      },
    })
    const delivery = sns.signedEvent({ type: 'Delivery', messageId: first.messageId, jobId: first.id, batchId: 'hook' })
    const failed = await post(handler, delivery)
    expect(failed).toMatchObject({ status: 500, outcome: 'failed' })
    expect(failed.error?.message).toContain('log database down')
    expect(await post(handler, delivery)).toMatchObject({ status: 200, outcome: 'duplicate' })
    expect(await post(handler, delivery)).toMatchObject({ status: 200, outcome: 'duplicate' })
    expect(seen).toHaveLength(2) // the first try and the retry; not the third delivery
    expect(seen.map((call) => call.delivered)).toEqual([1, 1])
    expect(seen[0]?.event).toEqual({
      type: 'delivery',
      id: delivery.MessageId,
      messageId: first.messageId,
      jobId: first.id,
      batchId: 'hook',
      recipients: ['reader@example.com'],
      suppressed: [],
      timestamp: expect.any(Number),
      raw: JSON.parse(delivery.Message as string),
    })
    expect((await h.queue.batchStats('hook'))?.totals.delivered).toBe(1)
  })

  test('a Redis failure answers 500 so that SNS retries', async () => {
    const h = harness(redis)
    const offline = new Redis(redisUrl(), { lazyConnect: true, enableOfflineQueue: false })
    const down = createEmailQueue({ redis: offline, prefix: h.prefix })
    const message = sns.signedEvent({ type: 'Delivery', messageId: randomUUID(), jobId: 'j1' })
    expect(await post(handlerFor(down), message)).toMatchObject({ status: 500, outcome: 'failed' })
    expect(await post(handlerFor(h.queue), message)).toMatchObject({ status: 200, outcome: 'processed' })
    expect((await h.queue.stats()).totals.delivered).toBe(1)
    offline.disconnect()
  })
})
