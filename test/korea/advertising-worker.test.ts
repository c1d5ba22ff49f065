import { afterAll, describe, expect, test } from 'vitest'
import { createEmailQueue, createTemplateRenderer, type EmailQueue } from '../../src/index.js'
import type { AdvertisingSender } from '../../src/korea/types.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'

const redis = connect()
const queues: EmailQueue[] = []
afterAll(async () => {
  for (const queue of queues) await queue.close()
})

const sender: AdvertisingSender = {
  name: '주식회사 밸리티',
  email: 'ad@vality.kr',
  phone: '02-1234-5678',
  address: '서울특별시 중구 세종대로 110',
}

const templates = createTemplateRenderer({
  defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' },
  unsubscribe: { secret: 'a-secret-of-at-least-16-characters' },
  templates: {
    'sale-lookalike': { subject: '[광고] {{title}}', html: '<p>{{title}}</p>', unsubscribe: true },
    'sale-no-link': { subject: '{{title}}', html: '<p>{{title}}</p>' },
    'receipt-marked': { subject: '(광고) 영수증 {{orderId}}', html: '<p>{{orderId}}</p>' },
  },
})

/** A harness whose queue has the advertising profile (everyone consented, no quiet hours). */
function setup() {
  const h = harness(redis)
  const queue = createEmailQueue({
    redis,
    prefix: h.prefix,
    advertising: {
      sender,
      consent: async (addresses) => addresses.map((address) => ({ address, consentedAt: 0 })),
      quietHours: false,
    },
  })
  queues.push(queue)
  return { ...h, queue }
}

describe('the worker renders advertising email', () => {
  test('a built-in template gets (광고) in its subject and the sender footer in both parts (Korean)', async () => {
    const { queue, transport, worker, settled } = setup()
    worker({ templates, advertising: { sender } }).start()
    const { id } = await queue.enqueue({
      type: 'welcome',
      to: 'reader@example.com',
      template: 'welcome',
      locale: 'ko',
      advertising: true,
    })
    expect(await settled(id)).toMatchObject({ status: 'sent' })
    const [sent] = transport.messages
    const message = sent?.message
    expect(message?.subject).toBe('(광고) Vality에 오신 것을 환영합니다')
    const oneClick = /<(https:[^>]+)>/.exec(message?.headers?.['List-Unsubscribe'] ?? '')?.[1] as string
    expect(oneClick).toMatch(/^https:\/\/vality\.kr\/unsubscribe\?token=/)
    for (const part of [message?.html ?? '', message?.text ?? '']) {
      for (const item of Object.values(sender)) expect(part).toContain(item)
      expect(part).toContain('수신거부')
    }
    expect(message?.html).toContain('보내는 사람: 주식회사 밸리티')
    expect(message?.html).toContain(`href="${oneClick.replaceAll('&', '&amp;')}"`)
    expect(message?.text).toContain(oneClick)
    // The metrics tell advertising from the rest: an ordinary job is sent too, and counted apart.
    const plain = await queue.enqueue({ type: 'receipt', to: 'reader@example.com', subject: 'Receipt', text: 'x' })
    expect(await settled(plain.id)).toMatchObject({ status: 'sent' })
    const metrics = await queue.metrics()
    expect(metrics).toMatch(/^mailstream_advertising_sent_total 1$/m)
    expect(metrics).toMatch(/^mailstream_jobs_total\{outcome="sent"\} 2$/m)
    expect((await queue.stats()).totals).toMatchObject({ sent: 2, advertisingSent: 1 })
  })

  test('the English footer, for a batch sharing its data', async () => {
    const { queue, transport, worker, settled } = setup()
    worker({ templates, advertising: { sender } }).start()
    const result = await queue.enqueueBatch('issue-1', ['a@example.com', 'b@example.com'], undefined, {
      template: 'newsletter-issue',
      data: { title: 'Spring sale', body: '**30%** off' },
      locale: 'en',
      advertising: true,
    })
    expect(result).toMatchObject({ enqueued: 2, withoutConsent: 0 })
    const { batchJobId } = await import('../../src/queue/batch-input.js')
    for (const address of ['a@example.com', 'b@example.com']) {
      expect(await settled(batchJobId('issue-1', address))).toMatchObject({ status: 'sent' })
    }
    for (const { message } of transport.messages) {
      expect(message.subject).toBe('(광고) [Vality] Spring sale')
      expect(message.html).toContain('Sender: 주식회사 밸리티')
      expect(message.html).toContain('Phone: 02-1234-5678')
      expect(message.text).toContain(sender.address)
    }
  })

  test('a template subject with a look-alike mark is dead with the reason, never retried', async () => {
    const { queue, transport, worker, settled } = setup()
    worker({ templates, advertising: { sender } }).start()
    const { id } = await queue.enqueue({
      type: 'promotion',
      to: 'reader@example.com',
      template: 'sale-lookalike',
      data: { title: '봄 세일' },
      maxAttempts: 5,
      advertising: true,
    })
    const state = await settled(id)
    expect(state).toMatchObject({ status: 'dead', attempts: 1 })
    expect(state.error).toMatch(/look-alike/)
    expect(transport.messages).toHaveLength(0)
  })

  test('a template without a refusal link is dead: the footer check names what is missing', async () => {
    const { queue, transport, worker, settled } = setup()
    worker({ templates, advertising: { sender } }).start()
    const { id } = await queue.enqueue({
      type: 'promotion',
      to: 'reader@example.com',
      template: 'sale-no-link',
      data: { title: '봄 세일' },
      advertising: true,
    })
    const state = await settled(id)
    expect(state).toMatchObject({ status: 'dead', attempts: 1 })
    expect(state.error).toMatch(/HTML part lacks unsubscribe/)
    expect(transport.messages).toHaveLength(0)
  })

  test('a job that is not advertising may not render (광고) into its subject', async () => {
    const { queue, transport, worker, settled } = setup()
    worker({ templates, advertising: { sender } }).start()
    const { id } = await queue.enqueue({
      type: 'receipt',
      to: 'reader@example.com',
      template: 'receipt-marked',
      data: { orderId: 'A1' },
    })
    const state = await settled(id)
    expect(state).toMatchObject({ status: 'dead', attempts: 1 })
    expect(state.error).toMatch(/not advertising/)
    expect(transport.messages).toHaveLength(0)
  })

  test('a worker without advertising.sender dead-letters an advertising job, saying why', async () => {
    const { queue, transport, worker, settled } = setup()
    worker({ templates }).start()
    const { id } = await queue.enqueue({
      type: 'welcome',
      to: 'reader@example.com',
      template: 'welcome',
      advertising: true,
    })
    const state = await settled(id)
    expect(state).toMatchObject({ status: 'dead', attempts: 1 })
    expect(state.error).toMatch(/no advertising\.sender/)
    expect(transport.messages).toHaveLength(0)
  })
})
