// The in-memory test queue: no Redis here.
import { describe, expect, test } from 'vitest'
import { batchJobId, createTemplateRenderer, type EmailQueue, MailstreamError } from '../../src/index.js'
import { validateJob } from '../../src/job.js'
import { createTestQueue, validateEmailJob } from '../../src/testing/index.js'
import { createMemoryTransport } from '../../src/transports/memory.js'

const templates = createTemplateRenderer({
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
  templates: {
    digest: { subject: '{{title}} for {{name}}', html: '<p>{{title}}</p><p>Hi {{name}}</p>', required: ['title'] },
  },
})
const FROM = 'Vality <noreply@vality.kr>'

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error: unknown) => error as MailstreamError,
  )

/** What a user's code under test might look like: it takes any EmailQueue. */
async function sendWelcome(queue: Pick<EmailQueue, 'enqueue'>, email: string) {
  return queue.enqueue({ type: 'welcome', to: email, template: 'welcome', data: { name: 'Kim' }, locale: 'en' })
}

describe('createTestQueue', () => {
  test('enqueue validates as the real queue does: the same error, and nothing is written', async () => {
    const queue = createTestQueue({ from: FROM })
    const bad = { type: 'welcome', to: 'not an address', subject: 'Hi\r\nBcc: x@example.com', text: 'x' }
    const error = await rejection(queue.enqueue(bad))
    const expected = (() => {
      try {
        validateJob(bad)
      } catch (thrown) {
        return thrown as MailstreamError
      }
    })()
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: expected?.field, message: expected?.message })
    expect(queue.jobs).toHaveLength(0)
    // One bad job in enqueueMany writes nothing, and is named by its index.
    await expect(
      queue.enqueueMany([
        { type: 'a', to: 'a@example.com', subject: 'A', text: 'a' },
        { type: 'b', to: 'b@example', subject: 'B', text: 'b' },
      ]),
    ).rejects.toMatchObject({ code: 'E_VALIDATION', field: '1.to' })
    expect(queue.jobs).toHaveLength(0)
    expect(await queue.drain()).toEqual([])
  })

  test('drain renders with the real renderer and sends to the memory transport; getStatus says sent', async () => {
    const queue = createTestQueue({ templates, from: FROM })
    const passed: EmailQueue = queue
    const { id, status, duplicate } = await sendWelcome(passed, 'Reader@Example.com')
    expect({ status, duplicate }).toEqual({ status: 'queued', duplicate: false })
    expect(await queue.getStatus(id)).toMatchObject({ status: 'queued', attempts: 0, type: 'welcome' })
    expect(queue.transport.messages).toHaveLength(0)

    const [sent, ...more] = await queue.drain()
    expect(more).toEqual([])
    expect(sent?.message).toMatchObject({
      jobId: id,
      from: { name: 'Vality', address: 'noreply@vality.kr' },
      to: [{ address: 'Reader@Example.com' }],
      subject: expect.stringContaining('Vality'),
    })
    expect(sent?.message.html).toContain('Kim')
    expect(sent?.message.text).toContain('Kim')
    expect(queue.sent).toEqual([sent])
    expect(queue.transport.messages.map((entry) => entry.messageId)).toEqual([sent?.messageId])
    expect(await queue.getStatus(id)).toMatchObject({
      status: 'sent',
      attempts: 1,
      messageId: sent?.messageId,
      sentAt: queue.now,
    })
    expect(await queue.drain()).toEqual([])
  })

  test('duplicates by id and by idempotency key return the first job; the key expires after its TTL', async () => {
    const queue = createTestQueue({ from: FROM, idempotencyTtlSeconds: 3600 })
    const job = { type: 'receipt', to: 'a@example.com', subject: 'Receipt', text: 'Thanks', idempotencyKey: 'order-1' }
    const first = await queue.enqueue(job)
    expect(await queue.enqueue({ ...job, text: 'Other' })).toEqual({ id: first.id, status: 'queued', duplicate: true })
    const byId = await queue.enqueue({ id: 'fixed-1', type: 'x', to: 'a@example.com', subject: 'S', text: 't' })
    expect(await queue.enqueue({ id: 'fixed-1', type: 'x', to: 'b@example.com', subject: 'S', text: 't' })).toEqual({
      id: 'fixed-1',
      status: 'queued',
      duplicate: true,
    })
    await queue.drain()
    expect(queue.sent.map((sent) => sent.message.jobId)).toEqual([first.id, byId.id])
    expect(await queue.enqueue(job)).toEqual({ id: first.id, status: 'sent', duplicate: true })
    await queue.advance(3600_000)
    const again = await queue.enqueue(job)
    expect(again).toMatchObject({ status: 'queued', duplicate: false })
    expect(again.id).not.toBe(first.id)
  })

  test('delays run on the virtual clock: advance sends each job when it falls due', async () => {
    const start = Date.UTC(2030, 0, 1)
    const queue = createTestQueue({ from: FROM, now: start })
    const later = await queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'Later', text: 't', delayMs: 60_000 })
    const at = await queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'At', text: 't', sendAt: start + 30_000 })
    expect(later.status).toBe('scheduled')
    expect(await queue.getStatus(later.id)).toMatchObject({ status: 'scheduled', dueAt: start + 60_000 })
    expect(await queue.drain()).toEqual([])
    expect((await queue.advance(30_000)).map((sent) => sent.message.subject)).toEqual(['At'])
    expect(await queue.advance(29_999)).toEqual([])
    const [sent] = await queue.advance(1)
    expect(sent).toMatchObject({ message: { subject: 'Later' }, sentAt: start + 60_000 })
    expect(queue.now).toBe(start + 60_000)
    expect((await queue.getStatus(at.id))?.status).toBe('sent')
  })

  test('cancel stops a queued or scheduled job, not a sent or unknown one', async () => {
    const queue = createTestQueue({ from: FROM })
    const queued = await queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'Q', text: 't' })
    const scheduled = await queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'S', text: 't', delayMs: 1000 })
    expect(await queue.cancel(queued.id)).toBe(true)
    expect(await queue.cancel(scheduled.id)).toBe(true)
    expect(await queue.cancel(queued.id)).toBe(false)
    expect(await queue.cancel('unknown')).toBe(false)
    await expect(queue.cancel('bad id')).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'id' })
    expect(await queue.runAll()).toEqual([])
    expect(await queue.getStatus(scheduled.id)).toMatchObject({ status: 'cancelled' })
    const sent = await queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'Sent', text: 't' })
    await queue.drain()
    expect(await queue.cancel(sent.id)).toBe(false)
  })

  test('a transient failure is retried with the worker’s backoff; a permanent one is dead and can be retried', async () => {
    const queue = createTestQueue({ from: FROM, backoff: { baseMs: 1000 } })
    const { id } = await queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'S', text: 't', maxAttempts: 2 })
    queue.transport.failNext('later')
    expect(await queue.drain()).toEqual([])
    const retrying = await queue.getStatus(id)
    expect(retrying).toMatchObject({ status: 'retrying', attempts: 1, error: expect.stringContaining('injected') })
    // 1000 * 2^1 ms, ±20 %.
    expect(retrying?.dueAt).toBeGreaterThanOrEqual(queue.now + 1600)
    expect(retrying?.dueAt).toBeLessThanOrEqual(queue.now + 2400)
    expect(await queue.runAll()).toHaveLength(1)
    expect(await queue.getStatus(id)).toMatchObject({ status: 'sent', attempts: 2 })

    const dead = await queue.enqueue({ type: 'x', to: 'b@example.com', subject: 'S', text: 't' })
    queue.transport.failNext('never', 1, { message: 'rejected by the provider' })
    await queue.drain()
    expect(await queue.getStatus(dead.id)).toMatchObject({ status: 'dead', attempts: 1 })
    const [letter] = await queue.deadLetters.list()
    expect(letter).toMatchObject({
      id: dead.id,
      attempts: 1,
      error: expect.stringContaining('rejected by the provider'),
    })
    expect((await queue.stats()).dead).toBe(1)
    expect(await queue.deadLetters.retry(dead.id)).toBe(1)
    expect(await queue.drain()).toHaveLength(1)
    expect(await queue.getStatus(dead.id)).toMatchObject({ status: 'sent', attempts: 1 })
    expect((await queue.stats()).totals).toMatchObject({ sent: 2, failed: 1, retried: 1 })
  })

  test('a template job without templates, or with missing data, is dead as the worker would make it', async () => {
    const bare = createTestQueue({ from: FROM })
    const { id } = await sendWelcome(bare, 'a@example.com')
    await bare.drain()
    expect(await bare.getStatus(id)).toMatchObject({ status: 'dead', error: expect.stringContaining('no templates') })

    const queue = createTestQueue({ templates, from: FROM })
    const missing = await queue.enqueue({ type: 'digest', to: 'a@example.com', template: 'digest', data: {} })
    await queue.drain()
    expect(await queue.getStatus(missing.id)).toMatchObject({ status: 'dead', error: expect.stringContaining('title') })
  })

  test('enqueueBatch: the real ids, shared data merged at render, duplicates, progress and the final state', async () => {
    const queue = createTestQueue({ templates, from: FROM })
    const progress: number[] = []
    const subscription = queue.onProgress('issue-1', (update) => progress.push(update.percentage))
    await subscription.ready
    const readers = [
      { email: 'kim@example.com', name: 'Kim' },
      { email: 'lee@example.com', name: 'Lee' },
      { email: 'bad address', name: 'Bad' },
      { email: 'KIM@example.com', name: 'Kim again' },
    ]
    const result = await queue.enqueueBatch(
      'issue-1',
      readers,
      (reader) => ({ to: reader.email, data: { name: reader.name } }),
      { template: 'digest', data: { title: 'March' }, skipInvalid: true },
    )
    expect(result).toEqual({ batchId: 'issue-1', total: 4, enqueued: 2, duplicates: 1, invalid: 1, cancelled: false })
    expect(queue.jobs.map((job) => job.id)).toEqual([
      batchJobId('issue-1', 'kim@example.com'),
      batchJobId('issue-1', 'lee@example.com'),
    ])
    expect(queue.jobs[0]).toMatchObject({ type: 'newsletter', priority: 'low', batchId: 'issue-1' })
    expect(await queue.getBatch('issue-1')).toMatchObject({ state: 'sending', total: 2, completed: 0 })

    const sent = await queue.drain()
    expect(sent.map((entry) => entry.message.subject)).toEqual(['March for Kim', 'March for Lee'])
    expect(sent[0]?.message.batchId).toBe('issue-1')
    // Sealing publishes 0 %, as seal-batch.lua does.
    expect(progress).toEqual([0, 50, 100])
    expect(await queue.getBatch('issue-1')).toMatchObject({ state: 'finished', sent: 2, done: true, percentage: 100 })
    // The same batch again adds nothing.
    const again = await queue.enqueueBatch('issue-1', readers.slice(0, 2), (reader) => reader.email, {
      template: 'digest',
      data: { title: 'March' },
    })
    expect(again).toMatchObject({
      enqueued: 0,
      duplicates: 2,
    })
    subscription()
    // The same checks as the real call: a bad option, a bad batch id.
    await expect(queue.enqueueBatch('issue-2', [], undefined, { id: 'x' } as never)).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'options.id',
    })
    await expect(queue.enqueueBatch('bad id', [])).rejects.toMatchObject({ field: 'batchId' })
  })

  test('watchBatch gives the snapshot, then each update, and ends at done', async () => {
    const queue = createTestQueue({ from: FROM })
    await queue.enqueueBatch('b', ['a@example.com', 'b@example.com'], undefined, { subject: 'S', text: 't' })
    const seen: number[] = []
    const watching = (async () => {
      for await (const progress of queue.watchBatch('b')) seen.push(progress.completed)
    })()
    await new Promise((resolve) => setTimeout(resolve, 0))
    await queue.drain()
    await watching
    expect(seen).toEqual([0, 1, 2])
  })

  test('cancelBatch cancels what has not been sent; later jobs of the batch are refused', async () => {
    const queue = createTestQueue({ from: FROM })
    await queue.enqueueBatch('b', ['a@example.com', 'b@example.com'], undefined, {
      subject: 'S',
      text: 't',
      delayMs: 1000,
    })
    expect(await queue.cancelBatch('b')).toBe(2)
    expect(await queue.getBatch('b')).toMatchObject({ state: 'cancelled', cancelled: 2, done: true })
    expect(await queue.enqueueBatch('b', ['c@example.com'], undefined, { subject: 'S', text: 't' })).toMatchObject({
      cancelled: true,
      enqueued: 0,
    })
    expect(
      await queue.enqueue({ type: 'x', to: 'c@example.com', subject: 'S', text: 't', batchId: 'b' }),
    ).toMatchObject({
      status: 'cancelled',
      duplicate: false,
    })
    expect(await queue.runAll()).toEqual([])
  })

  test('suppressed recipients are dropped; a job with only suppressed recipients is suppressed', async () => {
    const queue = createTestQueue({ from: FROM })
    await queue.suppression.add('Gone@Example.com', 'bounce')
    expect(await queue.suppression.has('gone@example.com')).toBe(true)
    const only = await queue.enqueue({ type: 'x', to: 'gone@example.com', subject: 'S', text: 't' })
    const some = await queue.enqueue({
      type: 'x',
      to: ['gone@example.com', 'here@example.com'],
      subject: 'S',
      text: 't',
    })
    const sent = await queue.drain()
    expect(sent.map((entry) => entry.message.to)).toEqual([[{ address: 'here@example.com' }]])
    expect(await queue.getStatus(only.id)).toMatchObject({ status: 'suppressed' })
    expect(await queue.getStatus(some.id)).toMatchObject({ status: 'sent' })
  })

  test('strict priority: high before normal before low, then first in first out', async () => {
    const queue = createTestQueue({ from: FROM })
    const job = (subject: string, priority: 'high' | 'normal' | 'low') => ({
      type: 'x',
      to: 'a@example.com',
      subject,
      text: 't',
      priority,
    })
    await queue.enqueueMany([
      job('low', 'low'),
      job('normal 1', 'normal'),
      job('high', 'high'),
      job('normal 2', 'normal'),
    ])
    expect((await queue.stats()).streams.normal.waiting).toBe(2)
    const sent = await queue.drain()
    expect(sent.map((entry) => entry.message.subject)).toEqual(['high', 'normal 1', 'normal 2', 'low'])
  })

  test('a given transport is used; bad options are E_CONFIG naming the field; a closed queue is E_CLOSED', async () => {
    const transport = createMemoryTransport({ name: 'mine' })
    const queue = createTestQueue({ transport })
    expect(queue.transport).toBe(transport)
    expect(await queue.ping()).toBe(0)
    expect(() => createTestQueue({ templates: {} as never })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'templates' }),
    )
    expect(() => createTestQueue({ from: 'nobody' })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'from' }),
    )
    await queue.close()
    await expect(queue.enqueue({ type: 'x', to: 'a@example.com', subject: 'S', text: 't' })).rejects.toMatchObject({
      code: 'E_CLOSED',
    })
  })

  test('validateEmailJob is the job schema of enqueue', () => {
    expect(validateEmailJob({ type: 'x', to: 'Kim <KIM@example.com>', subject: 'S', text: 't' })).toMatchObject({
      to: [{ name: 'Kim', address: 'KIM@example.com' }],
      priority: 'normal',
      maxAttempts: 3,
      id: expect.any(String),
    })
    expect(() => validateEmailJob({ type: 'x', to: 'a@example.com' })).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'html' }),
    )
  })
})
