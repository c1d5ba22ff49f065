import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import type { RetryingEvent } from '../../src/index.js'
import { createSesTransport, decodeTagValue, type SesTransport } from '../../src/transports/ses.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'
import { SEND_ROUTE, SES_FAULTS, type SesLocal, startSesLocal } from '../helpers/ses-local.js'

const redis = connect()
let ses: SesLocal
let transport: SesTransport
beforeAll(async () => {
  ses = await startSesLocal()
})
afterAll(async () => {
  await ses?.close()
})
beforeEach(async () => {
  await ses.clear()
  await transport?.close()
  transport = createSesTransport({ clientConfig: ses.clientConfig(), quotaRetryAfterMs: 60_000 })
})

const job = testJob

describe('queue -> worker -> SES', () => {
  test('1,000 mixed jobs, with throttles, 503s and resets on the way: each arrives exactly once', async () => {
    const { queue, worker } = harness(redis)
    const types = ['welcome', 'newsletter', 'verification-code'] as const
    const priorities = ['high', 'normal', 'low'] as const
    const jobs = Array.from({ length: 1000 }, (_, i) =>
      job({
        type: types[i % 3] as string,
        priority: priorities[(i * 7) % 3],
        to: i % 9 === 0 ? { name: `독자 ${i}`, address: `reader${i}@example.com` } : `reader${i}@example.com`,
        subject: `Issue #${i} 소식`,
        text: `Body ${i}`,
        maxAttempts: 6,
        ...(i % 2 === 1 && { html: `<p>Body <b>${i}</b></p>` }),
        ...(i % 10 === 0 && { attachments: [{ filename: `row-${i}.csv`, content: `id\n${i}\n` }] }),
        ...(i % 7 === 0 && { cc: `cc${i}@example.com`, bcc: `bcc${i}@example.com` }),
        ...(i % 4 === 0 && { batchId: 'issue:2026.05' }),
        ...(i % 5 === 0 && { id: `custom:${i}.x_y` }),
        ...(i % 6 === 0 && { headers: { 'X-Issue': String(i) } }),
      }),
    )
    const enqueued = await queue.enqueueMany(jobs)
    const ids = new Set(enqueued.map((result) => result.id))
    expect(ids.size).toBe(1000)
    for (let i = 0; i < 5; i++) {
      ses.fail(SES_FAULTS.throttle)
      ses.fail(SES_FAULTS.later)
      ses.fail({ reset: true })
    }

    // Sends started together share one abort signal; the SDK adds a listener per request.
    const warnings: Error[] = []
    const onWarning = (warning: Error) => warnings.push(warning)
    process.on('warning', onWarning)
    const w = worker({ transport, concurrency: 16 })
    const sentIds: string[] = []
    const deadIds: string[] = []
    w.on('sent', ({ id }) => sentIds.push(id))
    w.on('dead', ({ id }) => deadIds.push(id))
    await w.start()
    await waitUntil(() => sentIds.length + deadIds.length >= 1000, 60_000, '1,000 outcomes')
    process.off('warning', onWarning)
    expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([])
    expect(deadIds).toEqual([])
    expect(new Set(sentIds)).toEqual(ids)

    // SES received one accepted request per job, tagged with its id; the 15 faults were retried.
    const accepted = ses.requests.filter((request) => request.path === SEND_ROUTE && !request.fault)
    const faulted = ses.requests.filter((request) => request.path === SEND_ROUTE && request.fault)
    expect(faulted).toHaveLength(15)
    expect(accepted).toHaveLength(1000)
    const tagged = accepted.map((request) => {
      const tags = (JSON.parse(request.body) as { EmailTags: { Name: string; Value: string }[] }).EmailTags
      return decodeTagValue(tags.find((tag) => tag.Name === 'job_id')?.Value as string)
    })
    expect(new Set(tagged)).toEqual(ids)

    // And stored each message once: 1,000 messages, 1,000 distinct subjects, the ids the statuses name.
    const emails = await ses.emails()
    expect(emails).toHaveLength(1000)
    expect(new Set(emails.map((email) => email.subject)).size).toBe(1000)
    const states = await Promise.all([...ids].map((id) => queue.getStatus(id)))
    expect(states.every((state) => state?.status === 'sent')).toBe(true)
    expect(new Set(states.map((state) => state?.messageId))).toEqual(new Set(emails.map((email) => email.messageId)))
    const withAttachment = emails.find((email) => email.subject === 'Issue #10 소식')
    expect(withAttachment?.attachments[0]).toMatchObject({ filename: 'row-10.csv' })
  })

  test('a throttle uses no attempt, a 503 is retried, MessageRejected is dead at once', async () => {
    const { queue, worker, settled } = harness(redis)
    const w = worker({ transport, concurrency: 1 })
    const retrying: RetryingEvent[] = []
    w.on('retrying', (event) => retrying.push(event))
    ses.fail(SES_FAULTS.throttle)
    ses.fail(SES_FAULTS.later)
    await w.start()
    const first = await queue.enqueue(job({ to: 'first@example.com' }))
    expect(await settled(first.id)).toMatchObject({ status: 'sent', attempts: 2 })
    expect(retrying.map(({ throttled, attempts }) => ({ throttled, attempts }))).toEqual([
      { throttled: true, attempts: 0 },
      { throttled: false, attempts: 1 },
    ])

    ses.fail(SES_FAULTS.never)
    const rejected = await queue.enqueue(job({ to: 'rejected@example.com' }))
    expect(await settled(rejected.id)).toMatchObject({ status: 'dead', attempts: 1 })
    const [letter] = await queue.deadLetters.list()
    expect(letter).toMatchObject({ id: rejected.id, error: expect.stringContaining('[ses] MessageRejected') })
    expect((await ses.emails()).map((email) => email.destination.to)).toEqual([['first@example.com']])
  })

  test('"Daily message quota exceeded" re-schedules the job far ahead without using an attempt', async () => {
    const { queue, worker } = harness(redis)
    const w = worker({ transport })
    const retried = new Promise<RetryingEvent>((resolve) => w.on('retrying', resolve))
    ses.fail(SES_FAULTS.quota)
    await w.start()
    const before = Date.now()
    const { id } = await queue.enqueue(job())
    const event = await retried
    expect(event).toMatchObject({ id, throttled: true, attempts: 0 })
    expect(event.retryAt).toBeGreaterThanOrEqual(before + 60_000)
    await waitUntil(async () => (await queue.getStatus(id))?.status === 'throttled', 5000, 'the throttle recorded')
    const state = await queue.getStatus(id)
    expect(state).toMatchObject({ attempts: 0, error: expect.stringContaining('Daily message quota exceeded') })
    expect(state?.dueAt).toBeGreaterThanOrEqual(before + 60_000)
    expect(await queue.cancel(id)).toBe(true)
  })

  test('SendingPausedException pauses the worker instead of failing every queued job', async () => {
    const { queue, worker, settled } = harness(redis)
    const enqueued = await queue.enqueueMany(
      Array.from({ length: 5 }, (_, i) => job({ to: `reader${i}@example.com`, subject: `Paused ${i}` })),
    )
    ses.fail(SES_FAULTS.paused)
    const w = worker({ transport, concurrency: 1 })
    const paused = new Promise<{ reason: string }>((resolve) => w.on('paused', resolve))
    const dead = new Promise<{ id: string }>((resolve) => w.on('dead', resolve))
    await w.start()
    expect((await paused).reason).toContain('SendingPausedException')
    const { id: deadId } = await dead
    expect(w.paused).toBe(true)
    // One request reached SES; the other four jobs wait in the queue, attempts untouched.
    expect(ses.requests.filter((request) => request.path === SEND_ROUTE)).toHaveLength(1)
    const others = enqueued.map((result) => result.id).filter((id) => id !== deadId)
    for (const id of others) expect(await queue.getStatus(id)).toMatchObject({ status: 'queued', attempts: 0 })

    w.resume()
    for (const id of others) expect(await settled(id)).toMatchObject({ status: 'sent', attempts: 1 })
    expect(await ses.emails()).toHaveLength(4)
  })

  const accountWide = [
    ['MailFromDomainNotVerifiedException', SES_FAULTS.notVerified],
    ['NotFoundException', SES_FAULTS.notFound],
  ] as const
  test.each(accountWide)('%s pauses the worker: one dead letter, not one per queued job', async (name, fault) => {
    const { queue, worker, settled } = harness(redis)
    const enqueued = await queue.enqueueMany(
      Array.from({ length: 5 }, (_, i) => job({ to: `reader${i}@example.com`, subject: `Config ${i}` })),
    )
    ses.fail(fault)
    const w = worker({ transport, concurrency: 1 })
    const paused = new Promise<{ reason: string }>((resolve) => w.on('paused', resolve))
    const deadIds: string[] = []
    w.on('dead', ({ id }) => deadIds.push(id))
    await w.start()
    expect((await paused).reason).toContain(name)
    await waitUntil(() => deadIds.length === 1, 5000, 'the one dead letter')
    expect(w.paused).toBe(true)
    expect(ses.requests.filter((request) => request.path === SEND_ROUTE)).toHaveLength(1)
    const others = enqueued.map((result) => result.id).filter((id) => id !== deadIds[0])
    for (const id of others) expect(await queue.getStatus(id)).toMatchObject({ status: 'queued', attempts: 0 })

    // Fixed (the domain verified, the configuration set created): resume, and the rest go out.
    w.resume()
    for (const id of others) expect(await settled(id)).toMatchObject({ status: 'sent', attempts: 1 })
    expect(deadIds).toHaveLength(1)
  })
})
