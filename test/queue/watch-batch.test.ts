import { describe, expect, test } from 'vitest'
import { type BatchProgress, batchProgressStream, createEmailQueue, type EmailQueue } from '../../src/index.js'
import { harness } from '../helpers/queue.js'
import { connect, uniquePrefix, waitUntil } from '../helpers/redis.js'

const redis = connect()

const readers = (count: number) => Array.from({ length: count }, (_, i) => `reader${i}@example.com`)
const options = { subject: 'Issue', text: 'Hello' }

async function collect(items: AsyncIterable<BatchProgress>): Promise<BatchProgress[]> {
  const out: BatchProgress[] = []
  for await (const item of items) out.push(item)
  return out
}

/** Subscribers of a batch's progress channel on the server: 0 once every watch has let go. */
async function subscribers(prefix: string, batchId: string): Promise<number> {
  const [, count] = (await redis.pubsub('NUMSUB', `${prefix}:progress:${batchId}`)) as [string, number]
  return Number(count)
}

function expectRising(items: BatchProgress[]): void {
  const completed = items.map((item) => item.completed)
  for (let i = 1; i < completed.length; i++) expect(completed[i]).toBeGreaterThan(completed[i - 1] as number)
  expect(items.filter((item) => item.done)).toHaveLength(1)
  expect(items.at(-1)?.done).toBe(true)
}

describe('queue.watchBatch', () => {
  test('opened before the batch exists: every update of a 5-recipient batch, ending after done', async () => {
    const { queue, worker } = harness(redis)
    const watching = collect(queue.watchBatch('small'))
    await new Promise((resolve) => setTimeout(resolve, 50))
    await queue.enqueueBatch('small', readers(5), undefined, options)
    await worker().start()
    const items = await watching
    expectRising(items)
    expect(items.at(-1)).toEqual({
      batchId: 'small',
      completed: 5,
      total: 5,
      percentage: 100,
      sent: 5,
      failed: 0,
      suppressed: 0,
      cancelled: 0,
      done: true,
    })
  })

  test('opened mid-batch: the current state first, then live updates up to done', async () => {
    const { queue, worker } = harness(redis)
    await queue.enqueueBatch('mid', readers(50), undefined, options)
    const first = worker({ concurrency: 1 })
    let sent = 0
    first.on('sent', () => {
      if (++sent === 10) first.pause()
    })
    await first.start()
    await waitUntil(
      async () => first.inFlight === 0 && ((await queue.getBatch('mid'))?.completed ?? 0) >= 10,
      5000,
      'ten sends',
    )
    const before = (await queue.getBatch('mid'))?.completed as number
    expect(before).toBeLessThan(50)
    const items: BatchProgress[] = []
    const watching = (async () => {
      for await (const item of queue.watchBatch('mid')) {
        items.push(item)
        if (items.length === 1) first.resume()
      }
    })()
    await watching
    expect(items[0]).toMatchObject({ completed: before, total: 50, done: false })
    expectRising(items)
    expect(items.at(-1)).toMatchObject({ completed: 50, sent: 50, percentage: 100 })
  })

  test('opened after the batch finished: the final state, then the end', async () => {
    const { queue, worker, prefix } = harness(redis)
    await queue.enqueueBatch('over', readers(3), undefined, options)
    await worker().start()
    await waitUntil(async () => (await queue.getBatch('over'))?.done === true, 5000, 'the batch to finish')
    expect(await collect(queue.watchBatch('over'))).toEqual([expect.objectContaining({ completed: 3, done: true })])
    await waitUntil(async () => (await subscribers(prefix, 'over')) === 0, 5000, 'the channel to be let go')
  })

  test('break, return(), an aborted signal and close() end the watch cleanly and let the channel go', async () => {
    const prefix = uniquePrefix('watch')
    const queue = createEmailQueue({ redis, prefix })
    await queue.enqueueBatch('open', readers(4), undefined, options)

    for await (const item of queue.watchBatch('open')) {
      expect(item).toMatchObject({ total: 4, completed: 0, done: false })
      break
    }
    await waitUntil(async () => (await subscribers(prefix, 'open')) === 0, 5000, 'the channel to be let go')

    // return() while a next() waits: the waiting next() finishes too.
    const returned = queue.watchBatch('open')
    await returned.next()
    const waiting = returned.next()
    expect(await returned.return?.()).toEqual({ done: true, value: undefined })
    expect(await waiting).toEqual({ done: true, value: undefined })

    const controller = new AbortController()
    const aborted = queue.watchBatch('open', { signal: controller.signal })
    await aborted.next()
    const pending = aborted.next()
    controller.abort()
    expect(await pending).toEqual({ done: true, value: undefined })
    expect(await collect(queue.watchBatch('open', { signal: controller.signal }))).toEqual([])

    const closing = queue.watchBatch('never-made')
    const never = closing.next()
    await queue.close()
    expect(await never).toEqual({ done: true, value: undefined })
    expect(await subscribers(prefix, 'never-made')).toBe(0)
  })

  test('a bad batch id or signal is refused at once, and a closed queue refuses to watch', async () => {
    const queue = createEmailQueue({ redis, prefix: uniquePrefix('watch') })
    expect(() => queue.watchBatch('bad id')).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'batchId' }),
    )
    expect(() => queue.watchBatch('b', { signal: {} as AbortSignal })).toThrow(
      expect.objectContaining({ code: 'E_VALIDATION', field: 'signal' }),
    )
    await queue.close()
    expect(() => queue.watchBatch('b')).toThrow(expect.objectContaining({ code: 'E_CLOSED' }))
  })
})

async function readEvents(body: ReadableStream<Uint8Array>): Promise<string> {
  let text = ''
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) text += chunk
  return text
}

describe('batchProgressStream', () => {
  test('server-sent events: retry, progress, done, then the stream ends', async () => {
    const { queue, worker } = harness(redis)
    let closed = 0
    const { headers, body } = batchProgressStream(queue, 'sse', { onClose: () => closed++ })
    expect(headers).toEqual({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
    })
    const reading = readEvents(body)
    await new Promise((resolve) => setTimeout(resolve, 50))
    await queue.enqueueBatch('sse', readers(5), undefined, options)
    await worker().start()
    const text = await reading
    expect(text.startsWith('retry: 5000\n\n')).toBe(true)
    const events = text
      .trim()
      .split('\n\n')
      .slice(1)
      .map((block) => {
        const [event, data] = block.split('\n')
        return { event: event?.replace('event: ', ''), data: JSON.parse(data?.replace('data: ', '') ?? 'null') }
      })
    expect(events.at(-1)).toEqual({ event: 'done', data: expect.objectContaining({ completed: 5, done: true }) })
    expect(events.slice(0, -1).every((event) => event.event === 'progress')).toBe(true)
    expect(closed).toBe(1)
  })

  test('the client leaving cancels the watch; a queue closing ends the stream', async () => {
    const prefix = uniquePrefix('sse')
    const queue: EmailQueue = createEmailQueue({ redis, prefix })
    await queue.enqueueBatch('left', readers(2), undefined, options)
    let closed = 0
    const leaving = batchProgressStream(queue, 'left', { onClose: () => closed++ })
    const reader = leaving.body.getReader()
    await reader.read() // retry
    await reader.read() // the snapshot
    await reader.cancel()
    expect(closed).toBe(1)
    await waitUntil(async () => (await subscribers(prefix, 'left')) === 0, 5000, 'the channel to be let go')

    const staying = batchProgressStream(queue, 'left', { keepAliveMs: 20 })
    const reading = readEvents(staying.body)
    await new Promise((resolve) => setTimeout(resolve, 100))
    await queue.close()
    const text = await reading
    expect(text).toContain('event: progress')
    expect(text).toContain(': keep-alive')
    expect(text).not.toContain('event: done')
  })
})
