import { afterAll, describe, expect, test } from 'vitest'
import { createEmailQueue, createTemplateRenderer, type EmailQueue, MailstreamError } from '../../src/index.js'
import { connect, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
const queues: EmailQueue[] = []
afterAll(async () => {
  for (const queue of queues) await queue.close()
  redis.disconnect()
})

const templates = createTemplateRenderer({
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
  templates: { receipt: { subject: 'Receipt {{orderId}}', html: '<p>Order {{orderId}}</p>', required: ['orderId'] } },
})

function queue(withTemplates = true) {
  const prefix = uniquePrefix('tplcheck')
  const made = createEmailQueue({ redis, prefix, ...(withTemplates && { templates }) })
  queues.push(made)
  return { queue: made, prefix }
}

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  )

describe('createEmailQueue({ templates }) checks templated jobs at enqueue', () => {
  test('an unknown template is E_VALIDATION on template, and nothing is written', async () => {
    const { queue: q, prefix } = queue()
    const error = await rejection(q.enqueue({ type: 'receipt', to: 'a@example.com', template: 'reciept' }))
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'template' })
    expect(String((error as Error).message)).toMatch(/no such template/)
    expect(await redis.keys(`${prefix}:*`)).toEqual([])
  })

  test('a missing required variable is E_VALIDATION on data.<name>; with it the job is written', async () => {
    const { queue: q } = queue()
    const error = await rejection(q.enqueue({ type: 'receipt', to: 'a@example.com', template: 'receipt' }))
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'data.orderId' })
    const ok = await q.enqueue({ type: 'receipt', to: 'a@example.com', template: 'receipt', data: { orderId: 'A1' } })
    expect(ok).toMatchObject({ status: 'queued', duplicate: false })
  })

  test('enqueueMany names the job at fault and writes none of them', async () => {
    const { queue: q, prefix } = queue()
    const error = await rejection(
      q.enqueueMany([
        { type: 'receipt', to: 'a@example.com', template: 'receipt', data: { orderId: 'A1' } },
        { type: 'receipt', to: 'b@example.com', template: 'receipt' },
      ]),
    )
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: '1.data.orderId' })
    expect(String((error as Error).message)).toMatch(/^\[mailstream\] jobs\[1\]: /)
    expect(await redis.keys(`${prefix}:*`)).toEqual([])
  })

  test('enqueueBatch refuses an unknown template before writing; recipients may bring the variables', async () => {
    const { queue: q, prefix } = queue()
    const error = await rejection(q.enqueueBatch('b1', ['a@example.com'], undefined, { template: 'nope' }))
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'template' })
    expect(await redis.keys(`${prefix}:*`)).toEqual([])
    const result = await q.enqueueBatch(
      'b2',
      [{ id: 'A1', email: 'a@example.com' }],
      (r) => ({ to: r.email, data: { orderId: r.id } }),
      {
        type: 'receipt',
        template: 'receipt',
      },
    )
    expect(result.enqueued).toBe(1)
  })

  test('without templates nothing is checked (the worker decides at send time)', async () => {
    const { queue: q } = queue(false)
    const ok = await q.enqueue({ type: 'receipt', to: 'a@example.com', template: 'reciept' })
    expect(ok.status).toBe('queued')
  })

  test('templates must be a renderer', () => {
    expect(() => createEmailQueue({ redis, templates: {} as never })).toThrow(MailstreamError)
  })
})
