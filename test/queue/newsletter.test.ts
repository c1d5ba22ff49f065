import { Redis } from 'ioredis'
import { describe, expect, test } from 'vitest'
import {
  type BatchProgress,
  batchJobId,
  createTemplateRenderer,
  type EmailQueue,
  MailstreamError,
  verifyUnsubscribeToken,
} from '../../src/index.js'
import { harness, sendCounts } from '../helpers/queue.js'
import { connect, redisUrl, uniquePrefix, waitUntil } from '../helpers/redis.js'

const redis = connect()
const SECRET = 'test-secret-0123456789abcdef'

const templates = createTemplateRenderer({
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
  unsubscribe: { secret: SECRET, mailto: 'unsubscribe@vality.kr' },
  // A light template for the big batch: the fan-out is under test there, not the layout.
  templates: {
    digest: { subject: '{{title}}', text: 'Hi {{name}}: {{title}} / {{unsubscribeUrl}}', unsubscribe: 'required' },
  },
})

async function* readers(count: number, offset = 0) {
  for (let i = offset; i < offset + count; i++) {
    yield { email: `reader${i}@example.com`, name: `Reader ${i}` }
  }
}

function collect(queue: EmailQueue, batchId: string) {
  const messages: BatchProgress[] = []
  const unsubscribe = queue.onProgress(batchId, (progress) => messages.push(progress))
  return { messages, unsubscribe, done: () => messages.some((message) => message.done) }
}

async function rejection(promise: Promise<unknown>): Promise<MailstreamError> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(MailstreamError)
    return error as MailstreamError
  }
  throw new Error('expected a rejection')
}

describe('enqueueBatch', () => {
  test('20,000 recipients from an async generator: each sent once, final progress 100 %, counters match, a second run adds nothing', async () => {
    const { queue, transport, worker } = harness(redis)
    const total = 20_000
    const progress = collect(queue, 'issue-20k')
    await progress.unsubscribe.ready
    const workers = [worker({ templates, concurrency: 100 }), worker({ templates, concurrency: 100 })]
    await Promise.all(workers.map((w) => w.start()))

    const result = await queue.enqueueBatch(
      'issue-20k',
      readers(total),
      (reader) => ({
        to: reader.email,
        data: { name: reader.name },
      }),
      { template: 'digest', data: { title: 'Issue 20k' } },
    )
    expect(result).toEqual({
      batchId: 'issue-20k',
      total,
      enqueued: total,
      duplicates: 0,
      invalid: 0,
      cancelled: false,
    })

    await waitUntil(progress.done, 60_000, 'the final progress message')
    const counts = sendCounts(transport)
    expect(counts.size).toBe(total)
    expect([...counts.values()].every((count) => count === 1)).toBe(true)
    const sample = transport.find({ to: 'reader12345@example.com' })
    expect(sample?.message.subject).toBe('Issue 20k')
    expect(sample?.message.text).toMatch(/^Hi Reader 12345: Issue 20k \/ https:\/\/vality\.kr\/unsubscribe\?token=/)

    const final = progress.messages.filter((message) => message.done)
    expect(final).toEqual([
      {
        batchId: 'issue-20k',
        completed: total,
        total,
        percentage: 100,
        sent: total,
        failed: 0,
        suppressed: 0,
        cancelled: 0,
        done: true,
      },
    ])
    expect(progress.messages.at(-1)?.done).toBe(true)
    expect(progress.messages.length).toBeGreaterThan(5)
    const completed = progress.messages.map((message) => message.completed)
    expect(completed).toEqual([...completed].sort((a, b) => a - b))

    expect(await queue.getBatch('issue-20k')).toMatchObject({
      state: 'finished',
      total,
      sent: total,
      completed: total,
      percentage: 100,
      done: true,
      createdAt: expect.any(Number),
      finishedAt: expect.any(Number),
    })

    // Publishing the same issue again sends nothing more.
    const again = await queue.enqueueBatch(
      'issue-20k',
      readers(total),
      (reader) => ({
        to: reader.email,
        data: { name: reader.name },
      }),
      { template: 'digest', data: { title: 'Issue 20k' } },
    )
    expect(again).toMatchObject({ total, enqueued: 0, duplicates: total })
    expect((await queue.getBatch('issue-20k'))?.total).toBe(total)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(transport.messages.length).toBe(total)
    progress.unsubscribe()
  })

  test('a batch enqueued twice while still open sends each address once', async () => {
    const { queue, transport, worker } = harness(redis)
    const build = (reader: { email: string }) => reader.email
    const options = { template: 'digest', data: { title: 'T' } }
    const first = await queue.enqueueBatch('twice', readers(300), build, options)
    // The same list plus 50 newcomers, while nothing was sent yet: only the newcomers are new.
    const second = await queue.enqueueBatch('twice', readers(350), build, options)
    expect(first).toMatchObject({ total: 300, enqueued: 300, duplicates: 0 })
    expect(second).toMatchObject({ total: 350, enqueued: 50, duplicates: 300 })
    await worker({ templates }).start()
    await transport.waitForCount(350)
    await waitUntil(async () => (await queue.getBatch('twice'))?.state === 'finished')
    expect(sendCounts(transport).size).toBe(350)
    expect(transport.messages).toHaveLength(350)
  })

  test('the shared data is stored once, merged under each recipient’s data, and rendered with the real template', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const body = `## This issue\n\n${'A long paragraph. '.repeat(500)}\n\n<script>alert(1)</script>`
    const result = await queue.enqueueBatch(
      'issue-7',
      [
        { email: 'Kim@Example.com', name: '김지민', locale: 'ko' },
        { email: 'lee@example.com', name: 'Lee', locale: 'en' },
        { email: 'kim@example.com', name: 'Kim again', locale: 'ko' }, // the same address: a duplicate
      ],
      (reader) => ({
        to: { name: reader.name, address: reader.email },
        data: { name: reader.name },
        locale: reader.locale,
      }),
      { template: 'newsletter-issue', data: { title: 'Issue 7', body, name: 'Subscriber' } },
    )
    expect(result).toMatchObject({ total: 3, enqueued: 2, duplicates: 1 })

    // The body is in the batch hash once, not in the jobs.
    const entries = await redis.xrange(`${prefix}:send:low`, '-', '+')
    expect(entries).toHaveLength(2)
    for (const [, fields] of entries) expect(fields.join(' ')).not.toContain('A long paragraph')
    expect(JSON.parse((await redis.hget(`${prefix}:batch:issue-7`, 'data')) as string)).toMatchObject({
      title: 'Issue 7',
    })

    await worker({ templates }).start()
    const [kim, lee] = [
      await transport.waitFor({ to: 'kim@example.com' }),
      await transport.waitFor({ to: 'lee@example.com' }),
    ]
    expect(kim?.message.jobId).toBe(batchJobId('issue-7', 'kim@example.com'))
    expect(kim?.message.subject).toBe('[Vality] Issue 7')
    expect(kim?.message.html).toContain('김지민님, 안녕하세요.')
    expect(kim?.message.html).toContain('A long paragraph.')
    expect(kim?.message.html).not.toContain('<script')
    expect(lee?.message.subject).toBe('[Vality] Issue 7')
    expect(lee?.message.html).toContain('Hi Lee,')

    // One-click unsubscribe headers, with a token for this recipient.
    const headers = lee?.message.headers ?? {}
    expect(headers['List-Unsubscribe-Post']).toBe('List-Unsubscribe=One-Click')
    const token = /token=([^>&]+)>/.exec(headers['List-Unsubscribe'] ?? '')?.[1] as string
    expect(verifyUnsubscribeToken(decodeURIComponent(token), SECRET)).toMatchObject({
      ok: true,
      email: 'lee@example.com',
    })
    const tampered = `${token.slice(0, 5)}${token[5] === 'x' ? 'y' : 'x'}${token.slice(6)}`
    expect(verifyUnsubscribeToken(decodeURIComponent(tampered), SECRET).ok).toBe(false)
  })

  test('newsletters carry List-Unsubscribe headers, verification codes do not', async () => {
    const { queue, transport, worker } = harness(redis)
    await worker({ templates }).start()
    const code = await queue.enqueue({
      type: 'verification-code',
      to: 'reader@example.com',
      template: 'verification-code',
      data: { code: '123456' },
      priority: 'high',
    })
    await queue.enqueueBatch('headers', ['reader@example.com'], undefined, {
      template: 'newsletter-issue',
      data: { title: 'Hello', body: 'World' },
    })
    const verification = await transport.waitFor({ jobId: code.id })
    const newsletter = await transport.waitFor({ batchId: 'headers' })
    expect(verification.message.headers ?? {}).not.toHaveProperty('List-Unsubscribe')
    expect(verification.message.headers ?? {}).not.toHaveProperty('List-Unsubscribe-Post')
    expect(verification.message.subject).toBe('123456 is your Vality verification code')
    expect(newsletter.message.type).toBe('newsletter')
    expect(newsletter.message.priority).toBe('low')
    expect(newsletter.message.headers).toMatchObject({
      'List-Unsubscribe': expect.stringMatching(
        /^<https:\/\/vality\.kr\/unsubscribe\?token=[^>]+>, <mailto:unsubscribe@vality\.kr\?subject=unsubscribe%20[^>]+>$/,
      ),
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    })
  })

  test('a bad recipient throws E_VALIDATION naming it, or is skipped and counted with skipInvalid', async () => {
    const { queue } = harness(redis)
    const list = ['a@example.com', 'b@example.com', 'not an address', 'd@example.com']
    const error = await rejection(queue.enqueueBatch('bad', list, undefined, { template: 'digest' }))
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'recipients.2.to' })
    expect((await queue.getBatch('bad'))?.state).toBe('enqueueing') // not sealed: fix the list and run it again

    const skipped = await queue.enqueueBatch('bad', list, undefined, { template: 'digest', skipInvalid: true })
    expect(skipped).toMatchObject({ total: 4, enqueued: 3, duplicates: 0, invalid: 1 })
    expect((await queue.getBatch('bad'))?.state).toBe('sending')

    const extra = await rejection(
      queue.enqueueBatch('bad2', ['a@example.com'], (to) => ({ to, subject: 'x' }) as never, { template: 'digest' }),
    )
    expect(extra).toMatchObject({ code: 'E_VALIDATION', field: 'recipients.0.subject' })
    expect(
      await rejection(queue.enqueueBatch('bad3', ['a@example.com'], undefined, { id: 'x' } as never)),
    ).toMatchObject({
      field: 'options.id',
    })
    expect(await rejection(queue.enqueueBatch('bad4', ['a@example.com'], undefined, {}))).toMatchObject({
      code: 'E_VALIDATION',
      field: 'html',
    })
    expect(await rejection(queue.enqueueBatch('no spaces', [], undefined, { template: 'digest' }))).toMatchObject({
      field: 'batchId',
    })
    const changed = await rejection(
      queue.enqueueBatch('bad', ['e@example.com'], undefined, { template: 'digest', data: { title: 'Other' } }),
    )
    expect(changed).toMatchObject({ code: 'E_VALIDATION', field: 'data' })
  })

  test('cancelBatch stops unsent jobs, refuses new ones and finishes the batch', async () => {
    const { queue, transport, worker } = harness(redis)
    const progress = collect(queue, 'stop-me')
    await progress.unsubscribe.ready
    await queue.enqueueBatch('stop-me', readers(500), (reader) => reader.email, {
      template: 'digest',
      data: { title: 'T' },
    })
    // A few were scheduled (a retry, say): those are stopped too.
    await queue.enqueueBatch('stop-me', readers(20, 1000), (reader) => reader.email, {
      template: 'digest',
      data: { title: 'T' },
      delayMs: 60_000,
    })
    expect((await queue.getBatch('stop-me'))?.state).toBe('sending')
    expect(await queue.cancelBatch('stop-me')).toBe(520)
    await waitUntil(progress.done, 5000, 'the final progress message')
    expect(progress.messages.at(-1)).toMatchObject({ completed: 520, total: 520, cancelled: 520, done: true })
    expect(await queue.getBatch('stop-me')).toMatchObject({
      state: 'cancelled',
      total: 520,
      cancelled: 520,
      cancelledAt: expect.any(Number),
    })
    const again = await queue.enqueueBatch('stop-me', readers(10, 5000), (reader) => reader.email, {
      template: 'digest',
      data: { title: 'T' },
    })
    expect(again).toMatchObject({ cancelled: true, enqueued: 0 })
    expect(
      await queue.enqueue({ type: 'newsletter', to: 'late@example.com', subject: 'x', text: 'x', batchId: 'stop-me' }),
    ).toMatchObject({
      status: 'cancelled',
      duplicate: false,
    })
    await worker({ templates }).start()
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(transport.messages).toHaveLength(0)
    expect(await queue.cancelBatch('unknown-batch')).toBe(0)
    expect(await queue.getBatch('unknown-batch')).toBeNull()
  })
})

describe('onProgress', () => {
  test('one subscriber connection, made lazily from the queue’s client, closed with the last listener and by close()', async () => {
    const name = uniquePrefix('conn').replace(/-/g, '_')
    const client = new Redis(redisUrl(), { connectionName: name })
    const connections = async () =>
      ((await redis.client('LIST')) as string).split('\n').filter((line) => line.includes(` name=${name} `)).length
    try {
      const { queue } = harness(client as never, uniquePrefix('p'))
      await client.ping()
      expect(await connections()).toBe(1)
      const seen: BatchProgress[] = []
      const first = queue.onProgress('b1', (progress) => seen.push(progress))
      const second = queue.onProgress('b2', () => {})
      await Promise.all([first.ready, second.ready])
      expect(await connections()).toBe(2)
      // The user's client is not in subscriber mode.
      expect(await client.set(`${queue.prefix}:x`, '1')).toBe('OK')
      await redis.publish(
        `${queue.prefix}:progress:b1`,
        JSON.stringify({ batchId: 'b1', completed: 5, total: 10, done: false }),
      )
      await redis.publish(
        `${queue.prefix}:progress:b1`,
        JSON.stringify({ batchId: 'b1', completed: 3, total: 10, done: false }),
      )
      await waitUntil(() => seen.length === 1)
      first()
      second()
      await waitUntil(async () => (await connections()) === 1, 5000, 'the subscriber to close')
      queue.onProgress('b3', () => {})
      await waitUntil(async () => (await connections()) === 2)
      await queue.close()
      await waitUntil(async () => (await connections()) === 1, 5000, 'close() to close the subscriber')
      expect(await client.ping()).toBe('PONG') // the user's client stays open
    } finally {
      client.disconnect()
    }
  })
})
