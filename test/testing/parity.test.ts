// One scenario through the real queue and worker on Redis, and through the test queue: the same
// ids, statuses, batch counters and rendered messages.
import { describe, expect, test } from 'vitest'
import {
  batchJobId,
  createTemplateRenderer,
  type EmailQueue,
  type EnqueueBatchResult,
  type EnqueueResult,
  type JobState,
} from '../../src/index.js'
import { createTestQueue } from '../../src/testing/index.js'
import type { SentMessage } from '../../src/transports/memory.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'

const redis = connect()
const FROM = 'Mailstream <noreply@example.com>'
const templates = createTemplateRenderer({
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
  templates: {
    digest: {
      subject: '{{title}} for {{name}}',
      html: '<h1>{{title}}</h1><p>Hi {{name}}</p>',
      required: ['title', 'name'],
    },
  },
})

interface Outcome {
  results: EnqueueResult[]
  batch: EnqueueBatchResult
  ids: string[]
}

/** What a user's code does with a queue; the same calls on either. */
async function scenario(queue: EmailQueue): Promise<Outcome> {
  await queue.suppression.add('gone@example.com', 'bounce')
  const results: EnqueueResult[] = []
  results.push(
    await queue.enqueue({
      id: 'p-welcome',
      type: 'welcome',
      to: 'Kim <kim@example.com>',
      template: 'welcome',
      data: { name: '김' },
      locale: 'ko',
    }),
  )
  results.push(
    await queue.enqueue({
      id: 'p-code',
      type: 'verification-code',
      to: 'lee@example.com',
      template: 'verification-code',
      data: { code: '482913', expiresInMinutes: 10 },
      priority: 'high',
    }),
  )
  const notice = { id: 'p-html', type: 'notice', to: 'park@example.com', subject: 'Notice', html: '<p>Hi</p>' }
  results.push(await queue.enqueue(notice))
  results.push(await queue.enqueue(notice))
  const receipt = { type: 'receipt', to: 'choi@example.com', subject: 'Receipt', text: 'Thanks', idempotencyKey: 'o-1' }
  results.push(await queue.enqueue({ ...receipt, id: 'p-receipt' }))
  results.push(await queue.enqueue({ ...receipt, id: 'p-receipt-2' }))
  results.push(
    await queue.enqueue({ id: 'p-later', type: 'x', to: 'a@example.com', subject: 'S', text: 't', delayMs: 60_000 }),
  )
  results.push(await queue.enqueue({ id: 'p-gone', type: 'x', to: 'gone@example.com', subject: 'S', text: 't' }))
  results.push(
    await queue.enqueue({
      id: 'p-dead',
      type: 'x',
      to: 'a@example.com',
      template: 'digest',
      data: { name: 'No title' },
    }),
  )
  const batch = await queue.enqueueBatch(
    'p-batch',
    [
      { email: 'one@example.com', name: 'One' },
      { email: 'two@example.com', name: 'Two' },
      { email: 'ONE@example.com', name: 'Again' },
      { email: 'not an address', name: 'Bad' },
    ],
    (reader) => ({ to: reader.email, data: { name: reader.name } }),
    { template: 'digest', data: { title: 'March' }, skipInvalid: true },
  )
  const cancelled = await queue.cancel('p-later')
  expect(cancelled).toBe(true)
  const ids = [...results.map((result) => result.id), 'p-later']
  return { results, batch, ids }
}

const comparable = (state: JobState | null) => {
  if (!state) return null
  const { createdAt: _c, updatedAt: _u, sentAt: _s, messageId, dueAt: _d, ...rest } = state
  return { ...rest, hasMessageId: messageId !== undefined }
}

const rendered = (messages: readonly Pick<SentMessage, 'message'>[]) =>
  Object.fromEntries(
    messages.map(({ message }) => [
      message.jobId,
      { subject: message.subject, html: message.html, text: message.text, from: message.from, to: message.to },
    ]),
  )

async function statesOf(queue: EmailQueue, ids: string[], batchIds: string[]) {
  const states: Record<string, unknown> = {}
  for (const id of [...ids, ...batchIds]) states[id] = comparable(await queue.getStatus(id))
  const batch = await queue.getBatch('p-batch')
  const { createdAt: _c, finishedAt: _f, ...counters } = batch ?? {}
  return { states, batch: counters }
}

describe('the test queue and the real queue', () => {
  test('one scenario gives the same ids, statuses, batch counters and rendered messages', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const real = await scenario(queue)
    await worker({ templates }).start()
    const batchIds = ['one@example.com', 'two@example.com'].map((address) => batchJobId('p-batch', address))
    for (const id of [...real.ids, ...batchIds]) await settled(id)
    await transport.waitForCount(6)

    const testQueue = createTestQueue({ templates, from: FROM })
    const fake = await scenario(testQueue)
    await testQueue.drain()

    expect(fake.results).toEqual(real.results)
    expect(fake.batch).toEqual(real.batch)
    expect(fake.ids).toEqual(real.ids)
    const [realStates, fakeStates] = [
      await statesOf(queue, real.ids, batchIds),
      await statesOf(testQueue, fake.ids, batchIds),
    ]
    expect(fakeStates).toEqual(realStates)
    expect(Object.values(realStates.states).map((state) => (state as JobState | null)?.status)).toEqual([
      'sent', // p-welcome
      'sent', // p-code
      'sent', // p-html
      'sent', // p-receipt
      'cancelled', // p-later
      'suppressed', // p-gone
      'dead', // p-dead
      'sent', // the batch's two jobs
      'sent',
    ])
    expect(rendered(testQueue.sent)).toEqual(rendered(transport.messages))
    // Strict priority in both: the verification code goes first.
    expect(testQueue.sent[0]?.message.jobId).toBe('p-code')
    const [realDead, fakeDead] = [await queue.deadLetters.list(), await testQueue.deadLetters.list()]
    expect(fakeDead.map(({ id, error, attempts }) => ({ id, error, attempts }))).toEqual(
      realDead.map(({ id, error, attempts }) => ({ id, error, attempts })),
    )
  })
})
