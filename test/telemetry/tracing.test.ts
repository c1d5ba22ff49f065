import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash, randomUUID } from 'node:crypto'
import {
  type Context,
  type ContextManager,
  context,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { createEmailQueue, createEmailWorker, createSesWebhookHandler, type EmailQueue } from '../../src/index.js'
import { queueKeys } from '../../src/keys.js'
import { createTracing, loadTracingApi } from '../../src/telemetry/tracing.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, uniquePrefix, waitUntil } from '../helpers/redis.js'
import { post, snsFixture, TOPIC_ARN } from '../helpers/sns.js'

const redis = connect()
const exporter = new InMemorySpanExporter()
const ADDRESS = 'private.reader@example.com'
const hashOf = (address: string) => createHash('sha256').update(address).digest('hex').slice(0, 16)

/** What @opentelemetry/context-async-hooks does, in a few lines: the active context follows async calls. */
function asyncContextManager(): ContextManager {
  const storage = new AsyncLocalStorage<Context>()
  const manager: ContextManager = {
    active: () => storage.getStore() ?? ROOT_CONTEXT,
    with: (active, fn, thisArg, ...args) => storage.run(active, () => fn.apply(thisArg, args)),
    bind: (_context, target) => target,
    enable: () => manager,
    disable: () => manager,
  }
  return manager
}

beforeAll(async () => {
  expect(await loadTracingApi()).toBe(true)
  context.setGlobalContextManager(asyncContextManager())
})
beforeEach(() => {
  exporter.reset()
  trace.disable()
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
})
afterAll(() => {
  trace.disable()
  context.disable()
})

const spans = (name: string) => exporter.getFinishedSpans().filter((span) => span.name.startsWith(name))
const traceparent = (span: ReadableSpan) => {
  const { traceId, spanId } = span.spanContext()
  return `00-${traceId}-${spanId}-01`
}

/** The jobs (payloads) waiting in a send stream, oldest first. */
async function streamJobs(stream: string): Promise<{ id: string; trace?: string }[]> {
  const entries = (await redis.xrange(stream, '-', '+')) as [string, string[]][]
  return entries.map(([, fields]) => JSON.parse(fields[fields.indexOf('job') + 1] as string))
}

/** Queues made here with their own options, closed after each test. */
const own: EmailQueue[] = []
afterEach(async () => {
  await Promise.all(own.splice(0).map((queue) => queue.close()))
})

describe('enqueue', () => {
  test('a PRODUCER span per enqueue, whose traceparent is stored in the status hash and the payload', async () => {
    const { queue, prefix } = harness(redis)
    const { id } = await queue.enqueue(testJob({ to: ADDRESS, batchId: undefined }))
    const [span, ...more] = spans('enqueue')
    expect(more).toHaveLength(0)
    expect(span?.name).toBe(`enqueue ${prefix}:send:normal`)
    expect(span?.kind).toBe(SpanKind.PRODUCER)
    expect(span?.attributes).toMatchObject({
      'messaging.system': 'mailstream',
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'enqueue',
      'messaging.destination.name': `${prefix}:send:normal`,
      'messaging.message.id': id,
      'mailstream.job.type': 'welcome',
      'mailstream.job.priority': 'normal',
      'mailstream.recipient.count': 1,
      'mailstream.recipient.hash': [hashOf(ADDRESS)],
      'mailstream.job.status': 'queued',
      'mailstream.duplicate': false,
    })
    const keys = queueKeys(prefix)
    const stored = await redis.hget(keys.status(id), 'trace')
    expect(stored).toBe(traceparent(span as ReadableSpan))
    expect((await streamJobs(keys.stream('normal')))[0]?.trace).toBe(stored)
  })

  test('a duplicate is recorded as one; the span is a child of the caller’s active span', async () => {
    const { queue } = harness(redis)
    const tracer = trace.getTracer('test')
    const id = `dup-${randomUUID()}`
    await tracer.startActiveSpan('request', async (request) => {
      await queue.enqueue(testJob({ id }))
      await queue.enqueue(testJob({ id }))
      request.end()
    })
    const [first, second] = spans('enqueue')
    expect(first?.attributes['mailstream.duplicate']).toBe(false)
    expect(second?.attributes['mailstream.duplicate']).toBe(true)
    const request = spans('request')[0] as ReadableSpan
    expect(first?.parentSpanContext?.spanId).toBe(request.spanContext().spanId)
  })

  test('enqueueMany and enqueueBatch: one span per call, every job stores its context', async () => {
    const { queue, prefix } = harness(redis)
    const keys = queueKeys(prefix)
    const results = await queue.enqueueMany([testJob(), testJob({ to: 'other@example.com' })])
    const many = spans('enqueueMany')[0] as ReadableSpan
    expect(many.attributes).toMatchObject({ 'messaging.batch.message_count': 2, 'mailstream.enqueued.count': 2 })
    for (const { id } of results) expect(await redis.hget(keys.status(id), 'trace')).toBe(traceparent(many))

    const batchId = `b-${randomUUID()}`
    const batch = await queue.enqueueBatch(batchId, ['a@example.com', 'b@example.com', 'c@example.com'], undefined, {
      subject: 'Issue 1',
      text: 'Hello',
    })
    expect(batch.enqueued).toBe(3)
    const span = spans('enqueueBatch')[0] as ReadableSpan
    expect(span.name).toBe(`enqueueBatch ${prefix}:send:low`)
    expect(span.attributes).toMatchObject({
      'mailstream.batch.id': batchId,
      'messaging.batch.message_count': 3,
      'mailstream.batch.total': 3,
    })
    expect(span.attributes['mailstream.subject']).toBeUndefined()
    const jobs = await streamJobs(keys.stream('low'))
    expect(jobs).toHaveLength(3)
    for (const job of jobs) {
      expect(job.trace).toBe(traceparent(span))
      expect(await redis.hget(keys.status(job.id), 'trace')).toBe(traceparent(span))
    }
  })
})

describe('worker', () => {
  test('a CONSUMER span per attempt, linked to the enqueue span, with transport, attempt, outcome and message id', async () => {
    const h = harness(redis)
    await h.worker().start()
    const { id } = await h.queue.enqueue(testJob({ to: ADDRESS }))
    const sent = await h.transport.waitFor({ jobId: id })
    await h.settled(id)
    await waitUntil(() => spans('deliver').length === 1)
    const enqueue = spans('enqueue')[0] as ReadableSpan
    const deliver = spans('deliver')[0] as ReadableSpan
    expect(deliver.name).toBe(`deliver ${h.prefix}:send:normal`)
    expect(deliver.kind).toBe(SpanKind.CONSUMER)
    expect(deliver.links).toHaveLength(1)
    expect(deliver.links[0]?.context.traceId).toBe(enqueue.spanContext().traceId)
    expect(deliver.links[0]?.context.spanId).toBe(enqueue.spanContext().spanId)
    // Its own trace: the worker's work is not a child of the request that enqueued it.
    expect(deliver.spanContext().traceId).not.toBe(enqueue.spanContext().traceId)
    expect(deliver.attributes).toMatchObject({
      'messaging.system': 'mailstream',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'deliver',
      'messaging.destination.name': `${h.prefix}:send:normal`,
      'messaging.consumer.group.name': 'workers',
      'messaging.message.id': id,
      'mailstream.transport': 'memory',
      'mailstream.attempt': 1,
      'mailstream.attempts': 1,
      'mailstream.max_attempts': 3,
      'mailstream.outcome': 'sent',
      'mailstream.provider.message_id': sent.messageId,
      'mailstream.recipient.count': 1,
      'mailstream.recipient.hash': [hashOf(ADDRESS)],
    })
    expect(deliver.status.code).toBe(SpanStatusCode.UNSET)
  })

  test('a retry is a `retrying` event on a failed attempt; the next attempt has its own span, linked the same way', async () => {
    const h = harness(redis)
    h.transport.failNext('later', 1, { message: `mailbox ${ADDRESS} busy` })
    await h.worker().start()
    const { id } = await h.queue.enqueue(testJob({ to: ADDRESS }))
    await h.settled(id)
    await waitUntil(() => spans('deliver').length === 2)
    const [first, second] = spans('deliver') as [ReadableSpan, ReadableSpan]
    expect(first.attributes).toMatchObject({ 'mailstream.attempt': 1, 'mailstream.outcome': 'retry' })
    expect(first.status.code).toBe(SpanStatusCode.ERROR)
    expect(first.status.message).toBe('[mailstream] mailbox [address] busy')
    expect(first.attributes['error.type']).toBe('E_TRANSPORT')
    const retrying = first.events.find((event) => event.name === 'retrying')
    expect(retrying?.attributes).toMatchObject({
      'mailstream.attempts': 1,
      'mailstream.retry.throttled': false,
      'mailstream.error': '[mailstream] mailbox [address] busy',
    })
    expect(Number(retrying?.attributes?.['mailstream.retry.at'])).toBeGreaterThan(0)
    expect(second.attributes).toMatchObject({ 'mailstream.attempt': 2, 'mailstream.outcome': 'sent' })
    expect(second.links[0]?.context.spanId).toBe(first.links[0]?.context.spanId)
    expect(second.links[0]?.context.spanId).toBe(spans('enqueue')[0]?.spanContext().spanId)
  })

  test('a scheduled job keeps its context through the delayed set: its attempt links to its enqueue span', async () => {
    const h = harness(redis)
    await h.worker().start()
    const { id, status } = await h.queue.enqueue(testJob({ delayMs: 150 }))
    expect(status).toBe('scheduled')
    const enqueue = spans('enqueue')[0] as ReadableSpan
    expect(enqueue.attributes['mailstream.due_at']).toBeGreaterThan(Date.now())
    await h.settled(id)
    await waitUntil(() => spans('deliver').length === 1)
    expect(spans('deliver')[0]?.links[0]?.context.spanId).toBe(enqueue.spanContext().spanId)
  })

  test('a throttle is a `retrying` event with throttled: true', async () => {
    const h = harness(redis)
    h.transport.failNext('throttle', 1)
    await h.worker().start()
    const { id } = await h.queue.enqueue(testJob())
    await h.settled(id)
    await waitUntil(() => spans('deliver').length === 2)
    const first = spans('deliver')[0] as ReadableSpan
    expect(first.attributes['mailstream.outcome']).toBe('throttle')
    expect(first.events.find((event) => event.name === 'retrying')?.attributes?.['mailstream.retry.throttled']).toBe(
      true,
    )
  })

  test('a dead letter is a `dead` event, status ERROR', async () => {
    const h = harness(redis)
    h.transport.failNext('never', 1, { message: 'rejected' })
    await h.worker().start()
    const { id } = await h.queue.enqueue(testJob())
    expect((await h.settled(id)).status).toBe('dead')
    await waitUntil(() => spans('deliver').length === 1)
    const span = spans('deliver')[0] as ReadableSpan
    expect(span.attributes['mailstream.outcome']).toBe('dead')
    expect(span.status.code).toBe(SpanStatusCode.ERROR)
    expect(span.events.map((event) => event.name)).toEqual(['dead'])
    expect(span.events[0]?.attributes).toMatchObject({ 'mailstream.attempts': 1 })
    expect(span.events[0]?.attributes?.['mailstream.error']).toMatch(/rejected$/)
  })
})

describe('personal data', () => {
  test('no address in clear anywhere, and no subject, by default', async () => {
    const h = harness(redis)
    h.transport.failNext('later', 1, { message: `550 <${ADDRESS}>: user unknown` })
    await h.worker().start()
    const { id } = await h.queue.enqueue(
      testJob({ to: ADDRESS, cc: 'Copy <copy.person@example.org>', subject: 'Your secret code' }),
    )
    await h.settled(id)
    await waitUntil(() => spans('deliver').length === 2)
    const everything = JSON.stringify(
      exporter.getFinishedSpans().map((span) => ({
        name: span.name,
        attributes: span.attributes,
        events: span.events,
        status: span.status,
      })),
    )
    expect(everything).not.toContain(ADDRESS)
    expect(everything).not.toContain('copy.person')
    expect(everything).not.toContain('Your secret code')
    expect(everything).toContain(hashOf(ADDRESS))
    expect(everything).toContain(hashOf('copy.person@example.org'))
  })

  test('the subject only with recordSubject: true, on the queue and on the worker', async () => {
    const prefix = uniquePrefix('otel')
    const queue = createEmailQueue({ redis, prefix, tracing: { recordSubject: true } })
    own.push(queue)
    const transport = createMemoryTransport()
    const worker = createEmailWorker({
      redis,
      prefix,
      transport,
      from: 'a@example.com',
      tracing: { recordSubject: true },
    })
    await worker.start()
    try {
      const { id } = await queue.enqueue(testJob({ subject: 'Hello there' }))
      await transport.waitFor({ jobId: id })
      await waitUntil(() => spans('deliver').length === 1)
      expect(spans('enqueue')[0]?.attributes['mailstream.subject']).toBe('Hello there')
      expect(spans('deliver')[0]?.attributes['mailstream.subject']).toBe('Hello there')
    } finally {
      await worker.stop({ timeoutMs: 2000 })
    }
  })

  test('tracing must be false or { recordSubject }', () => {
    expect(() => createEmailQueue({ redis, tracing: 'yes' as never })).toThrow(/tracing/)
    expect(() => createEmailQueue({ redis, tracing: { recordSubjects: true } as never })).toThrow(/tracing/)
    expect(() => createEmailWorker({ redis, transport: createMemoryTransport(), tracing: true as never })).toThrow(
      /tracing/,
    )
  })
})

describe('SES webhook', () => {
  test('an SES event is a short span linked to the enqueue span, with the event at the time SES gives', async () => {
    const sns = snsFixture()
    const h = harness(redis)
    await h.worker().start()
    const { id } = await h.queue.enqueue(testJob({ to: ADDRESS }))
    const { messageId } = await h.transport.waitFor({ jobId: id })
    await h.settled(id)
    const handler = createSesWebhookHandler({
      queue: h.queue,
      allowedTopicArns: [TOPIC_ARN],
      fetchCertificate: sns.fetchCertificate,
    })
    const bounce = sns.signedEvent({
      type: 'Bounce',
      bounceType: 'Permanent',
      messageId,
      jobId: id,
      recipients: [ADDRESS],
    })
    expect(await post(handler, bounce)).toMatchObject({ status: 200, outcome: 'processed' })
    // SNS delivers again: applied once, recorded once.
    expect(await post(handler, bounce)).toMatchObject({ outcome: 'duplicate' })
    const [span, ...more] = spans('ses ')
    expect(more).toHaveLength(0)
    expect(span?.name).toBe('ses bounce')
    expect(span?.links[0]?.context.spanId).toBe(spans('enqueue')[0]?.spanContext().spanId)
    expect(span?.attributes).toMatchObject({
      'messaging.system': 'mailstream',
      'messaging.message.id': id,
      'mailstream.provider.message_id': messageId,
      'mailstream.ses.event': 'bounce',
      'mailstream.ses.bounce_type': 'Permanent',
      'mailstream.recipient.hash': [hashOf(ADDRESS)],
    })
    expect(span?.events.map((event) => event.name)).toEqual(['ses.bounce'])
    expect(JSON.stringify(span?.attributes)).not.toContain(ADDRESS)
  })
})

describe('nothing recorded', () => {
  test('when the API cannot be loaded, even with an SDK registered', async () => {
    const tracing = createTracing(undefined, () => Promise.reject(new Error("Cannot find module '@opentelemetry/api'")))
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(tracing.active()).toBe(false)
    expect(tracing.start('x', { kind: 'internal', attributes: {} })).toBeUndefined()
    const notTheApi = createTracing(undefined, async () => ({ something: 'else' }))
    await new Promise((resolve) => setTimeout(resolve, 10))
    expect(notTheApi.active()).toBe(false)
    expect(exporter.getFinishedSpans()).toHaveLength(0)
  })

  test('with tracing: false on the queue and the worker: no span, nothing stored', async () => {
    const prefix = uniquePrefix('otel')
    const queue = createEmailQueue({ redis, prefix, tracing: false })
    own.push(queue)
    const transport = createMemoryTransport()
    const worker = createEmailWorker({ redis, prefix, transport, from: 'a@example.com', tracing: false })
    await worker.start()
    try {
      const { id } = await queue.enqueue(testJob())
      await transport.waitFor({ jobId: id })
      expect(await redis.hget(queueKeys(prefix).status(id), 'trace')).toBeNull()
      expect(transport.messages[0]?.message.jobId).toBe(id)
    } finally {
      await worker.stop({ timeoutMs: 2000 })
    }
    expect(exporter.getFinishedSpans()).toHaveLength(0)
  })

  test('with no SDK registered: no span is made and nothing is stored', async () => {
    trace.disable()
    const h = harness(redis)
    const tracing = createTracing(undefined)
    expect(tracing.active()).toBe(false)
    const { id } = await h.queue.enqueue(testJob())
    expect(await redis.hget(queueKeys(h.prefix).status(id), 'trace')).toBeNull()
    expect((await streamJobs(queueKeys(h.prefix).stream('normal')))[0]).not.toHaveProperty('trace')
    expect(exporter.getFinishedSpans()).toHaveLength(0)
  })
})
