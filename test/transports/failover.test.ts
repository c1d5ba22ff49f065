import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { type FailedEvent, MailstreamError, TransportError } from '../../src/index.js'
import {
  type BreakerEvent,
  createFailoverTransport,
  type FailoverEvent,
  type FailoverTransport,
  failoverMetrics,
} from '../../src/transports/failover.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { createSesTransport, type SesTransport } from '../../src/transports/ses.js'
import { createSmtpTransport, type SmtpTransport } from '../../src/transports/smtp.js'
import { receivedFromMime } from '../helpers/mime.js'
import { parseExposition } from '../helpers/prometheus.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'
import { freePort } from '../helpers/redis-server.js'
import { SES_FAULTS, type SesLocal, startSesLocal } from '../helpers/ses-local.js'
import { type SmtpLocal, startSmtpLocal } from '../helpers/smtp-local.js'
import { transportContract } from './contract.js'

const redis = connect()
const smtpOptions = (port: number) => ({ host: '127.0.0.1', port, secure: false, maxConnections: 2 })
let ses: SesLocal
let smtp: SmtpLocal
let primary: SesTransport
let secondary: SmtpTransport
let failover: FailoverTransport | undefined

beforeAll(async () => {
  ;[ses, smtp] = await Promise.all([startSesLocal(), startSmtpLocal()])
  secondary = createSmtpTransport({ options: smtpOptions(smtp.port), name: 'smtp' })
})
afterAll(async () => {
  await secondary?.close()
  await Promise.all([ses?.close(), smtp?.close()])
})
beforeEach(async () => {
  await ses.clear()
  smtp.deliveries.length = 0
  primary = createSesTransport({ clientConfig: ses.clientConfig(), name: 'ses' })
})
afterEach(async () => {
  await primary.close()
  failover = undefined
})

/** SES first, the SMTP sink second with a sender of its own; a breaker that opens after 2 failures for 1 s. */
function sesThenSmtp(overrides: Partial<Parameters<typeof createFailoverTransport>[0]> = {}): FailoverTransport {
  failover = createFailoverTransport({
    transports: [{ transport: primary }, { transport: secondary, from: 'Backup <noreply@backup.example.com>' }],
    breaker: { failures: 2, windowMs: 10_000, openMs: 1_000 },
    ...overrides,
  })
  return failover
}

const smtpHeader = (raw: Buffer, name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(raw.toString('utf8'))?.[1]

// The contract through a failover whose primary refuses every connection: each message reaches the
// SMTP sink behind it, and the sink's failures come out in their own class.
transportContract('failover', async () => {
  const sink = await startSmtpLocal()
  const nowhere = createSmtpTransport({ options: smtpOptions(await freePort()), name: 'nowhere' })
  const backup = createSmtpTransport({ options: smtpOptions(sink.port), name: 'backup' })
  const transport = createFailoverTransport({ transports: [{ transport: nowhere }, { transport: backup }] })
  return {
    transport,
    async received(_message, messageId) {
      const delivery = sink.delivery(messageId)
      if (!delivery) throw new Error(`the SMTP sink has no message ${messageId}`)
      const got = await receivedFromMime(delivery.raw)
      const visible = new Set([...got.to, ...got.cc])
      return { ...got, bcc: delivery.envelope.to.filter((address) => !visible.has(address)) }
    },
    failNext(kind) {
      if (kind === 'throttle')
        sink.fail(454, { stage: 'mail', text: 'Throttling failure: Maximum sending rate exceeded.' })
      else if (kind === 'later') sink.fail(451, { stage: 'data', text: 'Temporary local problem' })
      else sink.fail(554, { stage: 'data', text: 'Message rejected' })
    },
    async close() {
      expect(transport.stats()[0]).toMatchObject({ name: 'nowhere', sent: 0, state: 'open' })
      // The pool first: the sink waits for its clients to leave before it closes.
      await transport.close()
      await sink.close()
    },
  }
})

describe('failover: SES primary, SMTP secondary, through a worker', () => {
  test('primary down: high jobs reach the secondary within one send, low jobs wait; primary back: the breaker closes; each job once', async () => {
    const transport = sesThenSmtp()
    const breakerEvents: BreakerEvent[] = []
    const failovers: FailoverEvent[] = []
    transport.on('breaker', (event) => breakerEvents.push(event))
    transport.on('failover', (event) => failovers.push(event))
    // A listener that throws does not break a send.
    transport.on('failover', () => {
      throw new Error('listener bug')
    })
    const { queue, worker, settled } = harness(redis)
    ses.fail(SES_FAULTS.later, 10_000)

    const w = worker({ transport, concurrency: 2 })
    const high = await queue.enqueueMany(
      Array.from({ length: 6 }, (_, i) =>
        testJob({ priority: 'high', subject: `High ${i}`, to: `high${i}@example.com` }),
      ),
    )
    const low = await queue.enqueueMany(
      Array.from({ length: 4 }, (_, i) =>
        testJob({
          type: 'newsletter',
          priority: 'low',
          subject: `Low ${i}`,
          to: `low${i}@example.com`,
          maxAttempts: 20,
        }),
      ),
    )
    await w.start()

    for (const { id } of high) expect(await settled(id)).toMatchObject({ status: 'sent', attempts: 1 })
    // On the secondary, with its own sender; SES stored nothing.
    expect(smtp.deliveries).toHaveLength(6)
    expect(smtp.deliveries.every((delivery) => delivery.envelope.from === 'noreply@backup.example.com')).toBe(true)
    expect(smtpHeader(smtp.deliveries[0]?.raw as Buffer, 'From')).toBe('Backup <noreply@backup.example.com>')
    expect(await ses.emails()).toEqual([])
    expect(failovers.length).toBe(6)
    expect(failovers[0]).toMatchObject({ from: 'ses', to: 'smtp', priority: 'high' })
    expect(failovers.some((event) => event.reason === 'breaker open')).toBe(true)
    expect(breakerEvents[0]).toMatchObject({ transport: 'ses', from: 'closed', to: 'open' })

    // The low jobs are held, not sent anywhere (and not dead).
    await new Promise((resolve) => setTimeout(resolve, 500))
    for (const { id } of low) expect((await queue.getStatus(id))?.status).not.toMatch(/sent|dead/)
    expect(smtp.deliveries.some((delivery) => /low\d@/.test(delivery.envelope.to.join()))).toBe(false)

    // A held low job comes back as the half-open probe, is refused, and opens the breaker again.
    await waitUntil(
      () =>
        breakerEvents.some((event) => event.transport === 'ses' && event.from === 'half-open' && event.to === 'open'),
      10_000,
      'a failed probe',
    )
    expect(smtp.deliveries).toHaveLength(6)

    // The primary is back: a half-open probe closes the breaker, and the low jobs go through SES.
    expect(await ses.emails()).toEqual([])
    await ses.clear()
    // They used no attempt while they waited (probes the primary refused included).
    for (const { id } of low) expect(await settled(id, 20_000)).toMatchObject({ status: 'sent', attempts: 1 })
    await waitUntil(() => transport.stats()[0]?.state === 'closed', 5_000, 'the SES breaker to close')
    const sesTransitions = breakerEvents.filter((event) => event.transport === 'ses').map(({ to }) => to)
    expect(sesTransitions.slice(-2)).toEqual(['half-open', 'closed'])

    // A high job after that goes to the primary again.
    const after = await queue.enqueue(testJob({ priority: 'high', subject: 'After', to: 'after@example.com' }))
    expect(await settled(after.id)).toMatchObject({ status: 'sent', attempts: 1 })

    // Every job exactly once, across both sinks, under the message id its status names.
    const ids = [...high, ...low, after].map(({ id }) => id)
    const states = await Promise.all(ids.map((id) => queue.getStatus(id)))
    const sesIds = (await ses.emails()).map((email) => email.messageId)
    const smtpIds = smtp.deliveries.map((delivery) => delivery.messageId)
    expect(sesIds).toHaveLength(5)
    expect(smtpIds).toHaveLength(6)
    expect(new Set([...sesIds, ...smtpIds])).toEqual(new Set(states.map((state) => state?.messageId)))
    expect((await ses.emails()).map((email) => email.subject).sort()).toEqual([
      'After',
      'Low 0',
      'Low 1',
      'Low 2',
      'Low 3',
    ])

    const [sesStats, smtpStats] = transport.stats()
    expect(sesStats).toMatchObject({ name: 'ses', state: 'closed', sent: 5 })
    expect(sesStats?.failed).toBeGreaterThanOrEqual(2)
    expect(smtpStats).toMatchObject({ name: 'smtp', state: 'closed', sent: 6, tookOver: 6, failed: 0 })
    // Valid Prometheus text beside the queue's own, with one family per name.
    const metrics = parseExposition((await queue.metrics()) + failoverMetrics(transport))
    const labels = { failover: 'failover', transport: 'ses' }
    expect(metrics.value('mailstream_failover_breaker_state', { ...labels, state: 'closed' })).toBe(1)
    expect(metrics.value('mailstream_failover_breaker_state', { ...labels, state: 'open' })).toBe(0)
    expect(metrics.value('mailstream_failover_sends_total', { ...labels, outcome: 'sent' })).toBe(5)
    const smtpLabels = { failover: 'failover', transport: 'smtp' }
    expect(metrics.value('mailstream_failover_sends_total', { ...smtpLabels, outcome: 'sent' })).toBe(6)
    expect(metrics.value('mailstream_failover_taken_over_total', smtpLabels)).toBe(6)
    expect(metrics.types.get('mailstream_failover_sends_total')).toBe('counter')
  })

  test('a paused SES account: high jobs fail over and the worker does not pause', async () => {
    const transport = sesThenSmtp()
    const { queue, worker, settled } = harness(redis)
    ses.fail(SES_FAULTS.paused, 3)
    const w = worker({ transport })
    await w.start()
    const job = await queue.enqueue(testJob({ priority: 'high', to: 'paused@example.com' }))
    expect(await settled(job.id)).toMatchObject({ status: 'sent', attempts: 1 })
    expect(w.paused).toBe(false)
    expect(smtp.deliveries.map((delivery) => delivery.envelope.to)).toEqual([['paused@example.com']])
  })

  test('a permanent rejection is not failed over and does not count against the breaker', async () => {
    const transport = sesThenSmtp({ breaker: { failures: 1, windowMs: 10_000, openMs: 1_000 } })
    const { queue, worker, settled } = harness(redis)
    ses.fail(SES_FAULTS.never)
    await worker({ transport }).start()
    const job = await queue.enqueue(testJob({ priority: 'high', to: 'rejected@example.com' }))
    expect(await settled(job.id)).toMatchObject({ status: 'dead', attempts: 1 })
    expect((await queue.getStatus(job.id))?.error).toContain('[ses] MessageRejected')
    expect(smtp.deliveries).toEqual([])
    expect(transport.stats()[0]).toMatchObject({ state: 'closed', failed: 1, sent: 0 })
  })

  test('a timeout is retried later, never sent to the secondary in the same try', async () => {
    const transport = sesThenSmtp({ breaker: { failures: 1, windowMs: 10_000, openMs: 5_000 } })
    const { queue, worker, settled } = harness(redis)
    ses.fail({ hang: true })
    const w = worker({ transport, sendTimeoutMs: 300 })
    const failed: FailedEvent[] = []
    w.on('failed', (event) => {
      failed.push(event)
      // When the first try fails, the secondary has nothing yet.
      expect(smtp.deliveries).toHaveLength(0)
    })
    await w.start()
    const job = await queue.enqueue(testJob({ priority: 'high', to: 'slow@example.com' }))
    // The second attempt finds the SES breaker open and goes to the secondary.
    expect(await settled(job.id)).toMatchObject({ status: 'sent', attempts: 2 })
    expect(failed).toHaveLength(1)
    // The worker's own timeout ends the try; the failover counted it against SES and sent nothing else.
    expect(failed[0]?.error.message).toMatch(/timed out after 300 ms/)
    expect(smtp.deliveries).toHaveLength(1)
    expect(transport.stats()[0]).toMatchObject({ state: 'open', failed: 1 })
  })
})

describe('failover: a reset without an answer', () => {
  test('is retried on the primary later, never sent to the secondary in the same try', async () => {
    const transport = sesThenSmtp({ breaker: { failures: 5, windowMs: 10_000, openMs: 1_000 } })
    const { queue, worker, settled } = harness(redis)
    ses.fail({ reset: true })
    const w = worker({ transport })
    const failed: FailedEvent[] = []
    w.on('failed', (event) => failed.push(event))
    await w.start()
    const job = await queue.enqueue(testJob({ priority: 'high', to: 'reset@example.com' }))
    expect(await settled(job.id)).toMatchObject({ status: 'sent', attempts: 2 })
    expect(failed.map((event) => event.error.message)).toEqual([expect.stringMatching(/ses may have accepted/)])
    expect(smtp.deliveries).toEqual([])
    expect((await ses.emails()).map((email) => email.destination.to)).toEqual([['reset@example.com']])
    expect(transport.stats()[0]).toMatchObject({ state: 'closed', sent: 1, failed: 1 })
  })
})

describe('failover: SMTP primary, SES secondary', () => {
  test('a hard bounce (550 at RCPT) is dead at once and not sent through SES', async () => {
    failover = createFailoverTransport({
      transports: [{ transport: secondary }, { transport: primary }],
      breaker: { failures: 1, windowMs: 10_000, openMs: 1_000 },
    })
    const { queue, worker, settled } = harness(redis)
    smtp.reject('gone@example.com')
    try {
      await worker({ transport: failover }).start()
      const job = await queue.enqueue(testJob({ priority: 'high', to: 'gone@example.com' }))
      expect(await settled(job.id)).toMatchObject({ status: 'dead', attempts: 1 })
      expect(ses.sendRequests()).toEqual([])
      expect(failover.stats()[0]).toMatchObject({ name: 'smtp', state: 'closed', failed: 1 })
    } finally {
      smtp.accept('gone@example.com')
    }
  })
})

describe('failover: verify, policy, options', () => {
  test('verify() checks each transport with a timeout, reports and emits, never throws', async () => {
    const nowhere = createSmtpTransport({
      options: { ...smtpOptions(await freePort()), connectionTimeout: 2000 },
      name: 'nowhere',
    })
    const memory = createMemoryTransport({ name: 'memory' })
    const transport = createFailoverTransport({
      transports: [
        { transport: primary, verify: (signal) => primary.getSendQuota({ signal }) },
        { transport: secondary },
        { transport: nowhere },
        { transport: createMemoryTransport({ name: 'stuck' }), verify: () => new Promise(() => {}) },
        { transport: memory },
      ],
      verifyTimeoutMs: 300,
    })
    // aws-ses-v2-local answers GetAccount from this variable.
    process.env.AWS_SES_ACCOUNT = JSON.stringify({
      DedicatedIpAutoWarmupEnabled: false,
      Details: {
        AdditionalContactEmailAddresses: [],
        ContactLanguage: 'EN',
        MailType: 'TRANSACTIONAL',
        ReviewDetails: { CaseId: 'case-1', Status: 'GRANTED' },
        UseCaseDescription: 'receipts',
        WebsiteURL: 'https://example.com',
      },
      EnforcementStatus: 'HEALTHY',
      ProductionAccessEnabled: true,
      SendingEnabled: true,
      SendQuota: { Max24HourSend: 50_000, MaxSendRate: 14, SentLast24Hours: 0 },
      SuppressionAttributes: { SuppressedReasons: [] },
    })
    const emitted: string[] = []
    transport.on('verify', ({ transport: name, status }) => emitted.push(`${name}:${status}`))
    const started = Date.now()
    const results = await transport.verify().finally(() => {
      delete process.env.AWS_SES_ACCOUNT
    })
    expect(Date.now() - started).toBeLessThan(2000)
    expect(results.map(({ transport: name, status }) => `${name}:${status}`)).toEqual([
      'ses:ok',
      'smtp:ok',
      'nowhere:failed',
      'stuck:failed',
      'memory:skipped',
    ])
    expect(results[3]?.error).toMatch(/no answer within 300 ms/)
    expect(emitted).toEqual(results.map(({ transport: name, status }) => `${name}:${status}`))
    await nowhere.close()
  })

  test('policy by type wins over priority; the unsubscribe function stops events', async () => {
    const down = createMemoryTransport({ name: 'down' })
    const backup = createMemoryTransport({ name: 'backup' })
    const transport = createFailoverTransport({
      transports: [{ transport: down }, { transport: backup }],
      breaker: { failures: 1, windowMs: 1000, openMs: 60_000 },
      policy: { types: { digest: 'failover', alert: 'wait' } },
    })
    const events: FailoverEvent[] = []
    const off = transport.on('failover', (event) => events.push(event))
    const context = { signal: new AbortController().signal, attempt: 1 }
    const message = (type: string, priority: 'high' | 'low') => ({
      jobId: `${type}-${priority}`,
      type,
      priority,
      from: { address: 'a@example.com' },
      to: [{ address: 'b@example.com' }],
      subject: 'x',
      text: 'y',
    })
    down.failNext('throttle', 1)
    // A throttle is a refusal: the high job goes to the backup in the same send, and opens the breaker.
    await transport.send(message('welcome', 'high'), context)
    expect(backup.messages.map((sent) => sent.message.jobId)).toEqual(['welcome-high'])
    await expect(transport.send(message('newsletter', 'low'), context)).rejects.toMatchObject({
      retry: 'throttle',
      statusCode: 'CircuitOpen',
    })
    await transport.send(message('digest', 'low'), context)
    // A type named like an Object.prototype member has no policy of its own.
    await expect(transport.send(message('constructor', 'low'), context)).rejects.toMatchObject({ retry: 'throttle' })
    await expect(transport.send(message('alert', 'high'), context)).rejects.toMatchObject({ retry: 'throttle' })
    off()
    await transport.send(message('welcome', 'high'), context)
    expect(backup.messages.map((sent) => sent.message.jobId)).toEqual(['welcome-high', 'digest-low', 'welcome-high'])
    expect(events.map(({ jobId }) => jobId)).toEqual(['welcome-high', 'digest-low'])
  })

  test('no new send after the signal aborts; every breaker open holds the job', async () => {
    const a = createMemoryTransport({ name: 'a' })
    const b = createMemoryTransport({ name: 'b' })
    const transport = createFailoverTransport({
      transports: [{ transport: a }, { transport: b }],
      breaker: { failures: 1, windowMs: 1000, openMs: 60_000 },
      // A memory failure carries no reply: say that it is a refusal.
      refused: () => true,
    })
    const controller = new AbortController()
    controller.abort(new Error('stopped'))
    const message = {
      jobId: 'j',
      type: 'welcome',
      priority: 'high' as const,
      from: { address: 'a@example.com' },
      to: [{ address: 'b@example.com' }],
      subject: 'x',
    }
    await expect(transport.send(message, { signal: controller.signal, attempt: 1 })).rejects.toMatchObject({
      retry: 'later',
      statusCode: 'AbortError',
    })
    expect(a.attempts + b.attempts).toBe(0)
    const live = { signal: new AbortController().signal, attempt: 1 }
    a.failNext('later', 1)
    b.failNext('later', 1)
    await expect(transport.send(message, live)).rejects.toMatchObject({ retry: 'later' })
    const held = transport.send(message, live)
    await expect(held).rejects.toMatchObject({ retry: 'throttle', statusCode: 'CircuitOpen' })
    const error = (await held.catch((caught: unknown) => caught)) as { retryAfterMs: number }
    expect(error.retryAfterMs).toBeGreaterThan(50_000)
    expect(transport.stats().map(({ state }) => state)).toEqual(['open', 'open'])
  })

  test('failoverMetrics renders several failover transports under one family each, labels escaped', () => {
    const one = createFailoverTransport({
      transports: [{ transport: createMemoryTransport({ name: 'a "quoted"\\one' }) }],
    })
    const two = createFailoverTransport({
      transports: [{ transport: createMemoryTransport({ name: 'b' }) }],
      name: 'bulk',
    })
    const metrics = parseExposition(failoverMetrics(one, two))
    expect(
      metrics.value('mailstream_failover_breaker_state', { failover: 'bulk', transport: 'b', state: 'closed' }),
    ).toBe(1)
    expect(
      metrics.samples.filter((sample) => sample.name === 'mailstream_failover_taken_over_total').map((s) => s.labels),
    ).toHaveLength(2)
    expect(failoverMetrics()).toBe('')
  })

  test("the worker's hard stop does not count against the breaker; its send timeout does", async () => {
    const slow = createMemoryTransport({ name: 'slow', latencyMs: 200 })
    const transport = createFailoverTransport({
      transports: [{ transport: slow }, { transport: createMemoryTransport({ name: 'other' }) }],
      breaker: { failures: 1, windowMs: 10_000, openMs: 60_000 },
    })
    const message = {
      jobId: 'j',
      type: 'welcome',
      priority: 'high' as const,
      from: { address: 'a@example.com' },
      to: [{ address: 'b@example.com' }],
      subject: 'x',
    }
    const stop = new AbortController()
    const stopped = transport.send(message, { signal: stop.signal, attempt: 1 })
    stop.abort(new MailstreamError('E_CLOSED', 'worker stopped before the send finished'))
    await expect(stopped).rejects.toMatchObject({ retry: 'later' })
    expect(transport.stats()[0]).toMatchObject({ state: 'closed', failed: 1 })

    const timeout = new AbortController()
    const timedOut = transport.send(message, { signal: timeout.signal, attempt: 1 })
    timeout.abort(new TransportError('send timed out after 100 ms', { retry: 'later' }))
    await expect(timedOut).rejects.toMatchObject({
      retry: 'later',
      message: expect.stringMatching(/may have accepted/),
    })
    expect(transport.stats()[0]).toMatchObject({ state: 'open', failed: 2 })
    // Neither was handed to the other transport.
    expect(transport.stats()[1]).toMatchObject({ sent: 0 })
  })

  test('options are checked and name the field', () => {
    const a = createMemoryTransport({ name: 'same' })
    expect(() => createFailoverTransport({ transports: [] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'transports' }),
    )
    expect(() => createFailoverTransport({ transports: [{ transport: a }, { transport: a }] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'transports.1.transport' }),
    )
    expect(() =>
      createFailoverTransport({ transports: [{ transport: a }], policy: { low: 'later' as never } }),
    ).toThrow(expect.objectContaining({ code: 'E_CONFIG', field: 'policy.low' }))
    expect(() => createFailoverTransport({ transports: [{ transport: a, from: 'not an address' }] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'transports.0.from' }),
    )
    expect(() => createFailoverTransport({ transports: [{ transport: a }], breaker: { failures: 0 } })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'breaker.failures' }),
    )
  })
})
