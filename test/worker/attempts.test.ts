import { describe, expect, test } from 'vitest'
import { describeError } from '../../src/errors.js'
import type { TemplateRendererLike } from '../../src/index.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const templateJob = (overrides = {}) => testJob({ subject: undefined, text: undefined, template: 'news', ...overrides })

function throwingRenderer(make: () => unknown): TemplateRendererLike & { renders: number } {
  const renderer = {
    renders: 0,
    async render(): Promise<never> {
      renderer.renders++
      throw make()
    },
  }
  return renderer
}

describe('every failed step counts toward maxAttempts', () => {
  test('a renderer that throws a plain Error: retried with growing backoff, dead after maxAttempts', async () => {
    const { queue, worker, settled } = harness(connect())
    const templates = throwingRenderer(() => new Error('template store unreachable'))
    const { id } = await queue.enqueue(templateJob({ maxAttempts: 3 }))
    await worker({ templates, backoff: { baseMs: 20, maxMs: 200 } }).start()
    const state = await settled(id, 10_000)
    expect(state.status).toBe('dead')
    expect(state.attempts).toBe(3)
    expect(state.error).toContain('template store unreachable')
    expect(templates.renders).toBe(3)
  })

  test('a stack overflow while rendering is dead at once', async () => {
    const { queue, worker, settled } = harness(connect())
    const templates = throwingRenderer(() => new RangeError('Maximum call stack size exceeded'))
    const { id } = await queue.enqueue(templateJob({ maxAttempts: 5 }))
    await worker({ templates }).start()
    const state = await settled(id)
    expect(state.status).toBe('dead')
    expect(state.attempts).toBe(1)
    expect(templates.renders).toBe(1)
  })

  test('a batch whose every render fails reaches done', async () => {
    const batchName = `issue-${Date.now()}`
    const { queue, worker } = harness(connect())
    const templates = throwingRenderer(() => new Error('boom'))
    await queue.enqueueBatch(batchName, ['a@example.com', 'b@example.com', 'c@example.com'], undefined, {
      type: 'newsletter',
      template: 'news',
      maxAttempts: 2,
    })
    await worker({ templates, backoff: { baseMs: 10, maxMs: 50 } }).start()
    await waitUntil(async () => (await queue.getBatch(batchName))?.done === true, 10_000, 'the batch to finish')
    const batch = await queue.getBatch(batchName)
    expect(batch).toMatchObject({ total: 3, failed: 3, done: true })
    expect(templates.renders).toBe(6)
  })
})

describe('a thrown value that cannot be described still goes through the retry path', () => {
  const hostile: [string, () => unknown][] = [
    ['a null-prototype object', () => Object.create(null)],
    [
      'an object whose toString throws',
      () => ({
        toString() {
          throw new Error('no')
        },
      }),
    ],
    [
      'an Error whose message getter throws',
      () => {
        const error = new Error('x')
        Object.defineProperty(error, 'message', {
          get() {
            throw new Error('no')
          },
        })
        return error
      },
    ],
  ]

  test.each(hostile)('%s: described safely', (_, make) => {
    expect(typeof describeError(make())).toBe('string')
  })

  test.each(hostile)('%s thrown by the transport: retried, then dead with a description', async (_, make) => {
    const { queue, transport, worker, settled } = harness(connect())
    let calls = 0
    transport.send = async () => {
      calls++
      throw make()
    }
    const { id } = await queue.enqueue(testJob({ maxAttempts: 2 }))
    await worker({ backoff: { baseMs: 10, maxMs: 50 } }).start()
    const state = await settled(id)
    expect(state.status).toBe('dead')
    expect(state.attempts).toBe(2)
    expect(state.error).toMatch(/unreadable|Error|object/)
    expect(calls).toBe(2)
  })
})
