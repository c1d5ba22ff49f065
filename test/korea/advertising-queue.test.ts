import { afterAll, describe, expect, test } from 'vitest'
import { nextLocalTime } from '../../src/calendar.js'
import { createEmailQueue, type EmailQueue, MailstreamError } from '../../src/index.js'
import type { AdvertisingQueueOptions } from '../../src/korea/options.js'
import type { AdvertisingConsent, AdvertisingSender } from '../../src/korea/types.js'
import { wallTimeAt } from '../../src/zoned-time.js'
import { connect, keysOf, uniquePrefix } from '../helpers/redis.js'

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
const footer = `<p>${sender.name} · ${sender.email} · ${sender.phone} · ${sender.address}</p><p><a href="https://vality.kr/unsubscribe">수신거부</a></p>`
const footerText = `${sender.name} ${sender.email} ${sender.phone} ${sender.address}\n수신거부 https://vality.kr/unsubscribe`

/** Consents held for these addresses, as the app would keep them; calls are recorded. */
function consentsFor(...addresses: string[]) {
  const calls: string[][] = []
  const lookup = async (asked: string[]): Promise<AdvertisingConsent[]> => {
    calls.push(asked)
    return asked.filter((address) => addresses.includes(address)).map((address) => ({ address, consentedAt: 0 }))
  }
  return { calls, lookup }
}

function queue(advertising: Partial<AdvertisingQueueOptions> | undefined, commandTimeoutMs?: number) {
  const prefix = uniquePrefix('ad')
  const made = createEmailQueue({
    redis,
    prefix,
    ...(commandTimeoutMs !== undefined && { commandTimeoutMs }),
    ...(advertising && {
      advertising: { sender, consent: consentsFor().lookup, quietHours: false, ...advertising },
    }),
  })
  queues.push(made)
  return { queue: made, prefix }
}

/** The job stored in a send-stream entry (field `job`). */
const payloadOf = (fields: string[]) => JSON.parse(fields[fields.indexOf('job') + 1] as string)

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: unknown) => error,
  )

const adJob = (overrides: Record<string, unknown> = {}) => ({
  type: 'promotion',
  to: 'reader@example.com',
  subject: '봄 세일 30%',
  html: `<h1>봄 세일</h1>${footer}`,
  text: `봄 세일\n${footerText}`,
  advertising: true as const,
  ...overrides,
})

describe('the advertising profile at enqueue', () => {
  test('an advertising job without consent is E_CONSENT on to, and nothing is written', async () => {
    const { queue: q, prefix } = queue({})
    const error = await rejection(q.enqueue(adJob()))
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_CONSENT', field: 'to' })
    expect(String((error as Error).message)).toMatch(/no advertising consent on record for 'reader@example.com'/)
    expect(await keysOf(redis, prefix)).toEqual([])
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(0)
  })

  test('every recipient needs consent: one missing among to and cc refuses the job', async () => {
    const consents = consentsFor('reader@example.com')
    const { queue: q, prefix } = queue({ consent: consents.lookup })
    const error = await rejection(q.enqueue(adJob({ cc: 'Other@Example.com' })))
    expect(error).toMatchObject({ code: 'E_CONSENT', field: 'to' })
    expect(consents.calls).toEqual([['reader@example.com', 'other@example.com']])
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('with consent the job is written, its subject marked (광고)', async () => {
    const consents = consentsFor('reader@example.com')
    const { queue: q, prefix } = queue({ consent: consents.lookup })
    const result = await q.enqueue(adJob())
    expect(result).toMatchObject({ status: 'queued', duplicate: false })
    const entries = (await redis.xrange(`${prefix}:send:normal`, '-', '+')) as [string, string[]][]
    expect(entries).toHaveLength(1)
    const payload = payloadOf(entries[0]?.[1] ?? [])
    expect(payload).toMatchObject({ subject: '(광고) 봄 세일 30%', advertising: true })
  })

  test('a consent dated in the future is no consent yet', async () => {
    const { queue: q, prefix } = queue({
      consent: async (addresses) => addresses.map((address) => ({ address, consentedAt: Date.now() + 3_600_000 })),
    })
    expect(await rejection(q.enqueue(adJob()))).toMatchObject({ code: 'E_CONSENT' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('the transaction exception: just inside six months is written without a lookup; just outside is refused', async () => {
    const consents = consentsFor()
    const { queue: q, prefix } = queue({ consent: consents.lookup })
    const now = Date.now()
    // Two days either side of six months ago (the exact boundary is tested in transaction.test.ts).
    const ended = new Date(now)
    ended.setUTCMonth(ended.getUTCMonth() - 6)
    const inside = ended.getTime() + 2 * 86_400_000
    const outside = ended.getTime() - 2 * 86_400_000
    const ok = await q.enqueue(adJob({ advertising: { transactionEndedAt: new Date(inside).toISOString() } }))
    expect(ok.status).toBe('queued')
    expect(consents.calls).toEqual([])
    const before = await keysOf(redis, prefix)
    const error = await rejection(q.enqueue(adJob({ advertising: { transactionEndedAt: outside } })))
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'advertising.transactionEndedAt' })
    expect(String((error as Error).message)).toMatch(/six months/)
    expect(await keysOf(redis, prefix)).toEqual(before)
  })

  test('a consent lookup that never answers is E_TIMEOUT after consentTimeoutMs, and nothing is written', async () => {
    const { queue: q, prefix } = queue({ consent: () => new Promise(() => {}), consentTimeoutMs: 150 })
    const started = performance.now()
    const error = await rejection(q.enqueue(adJob()))
    const took = performance.now() - started
    expect(error).toMatchObject({ code: 'E_TIMEOUT', field: 'advertising.consent' })
    expect(took).toBeGreaterThanOrEqual(140)
    expect(took).toBeLessThan(2000)
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a consent lookup that answers without end is cut off: E_CONSENT, nothing written', async () => {
    const { queue: q, prefix } = queue({
      consent: () => ({
        *[Symbol.iterator]() {
          for (;;) yield { address: 'someone@example.com', consentedAt: 0 }
        },
      }),
    })
    const error = await rejection(q.enqueue(adJob()))
    expect(error).toMatchObject({ code: 'E_CONSENT', field: 'advertising.consent' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a consent lookup that throws is E_CONSENT with the cause, and nothing is written', async () => {
    const boom = new Error('consent database down')
    const { queue: q, prefix } = queue({
      consent: async () => {
        throw boom
      },
    })
    const error = await rejection(q.enqueue(adJob()))
    expect(error).toMatchObject({ code: 'E_CONSENT', field: 'advertising.consent', cause: boom })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('consentTimeoutMs must be below commandTimeoutMs', () => {
    expect(() => queue({ consentTimeoutMs: 5000 }, 1000)).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'advertising.consentTimeoutMs' }),
    )
  })

  test('a bad sender is E_CONFIG naming the field', () => {
    expect(() => queue({ sender: { ...sender, phone: 'call us' } })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'advertising.sender.phone' }),
    )
  })

  test('a look-alike mark on an advertising job is refused', async () => {
    const { queue: q, prefix } = queue({ consent: consentsFor('reader@example.com').lookup })
    const error = await rejection(q.enqueue(adJob({ subject: '(광/고) 봄 세일' })))
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'subject' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a job that is not advertising may not carry (광고) on a queue with the profile', async () => {
    const { queue: q, prefix } = queue({})
    const error = await rejection(
      q.enqueue({ type: 'receipt', to: 'a@example.com', subject: '(광고) 영수증', text: 'x' }),
    )
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'subject' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a raw advertising body without the footer is refused', async () => {
    const { queue: q, prefix } = queue({ consent: consentsFor('reader@example.com').lookup })
    const error = await rejection(
      q.enqueue(adJob({ html: '<img src="https://vality.kr/sale.png" alt="세일">', text: '세일' })),
    )
    expect(error).toMatchObject({ code: 'E_VALIDATION', field: 'html' })
    expect(String((error as Error).message)).toMatch(/HTML part lacks name, email, phone, address, unsubscribe/)
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a malformed advertising field is E_VALIDATION naming it', async () => {
    const { queue: q, prefix } = queue({})
    for (const advertising of [false, {}, { transactionEndedAt: 'last spring' }]) {
      const error = await rejection(q.enqueue(adJob({ advertising })))
      expect(error).toMatchObject({ code: 'E_VALIDATION', field: expect.stringMatching(/^advertising/) })
    }
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a queue without the profile refuses an advertising job', async () => {
    const { queue: q, prefix } = queue(undefined)
    expect(await rejection(q.enqueue(adJob()))).toMatchObject({ code: 'E_VALIDATION', field: 'advertising' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('enqueueMany looks consent up once and names the job at fault by its own index', async () => {
    const consents = consentsFor('a@example.com')
    const { queue: q, prefix } = queue({ consent: consents.lookup })
    const error = await rejection(
      q.enqueueMany([
        { type: 'receipt', to: 'x@example.com', subject: 'Receipt', text: 'x' },
        adJob({ to: 'a@example.com' }),
        adJob({ to: 'b@example.com' }),
      ]),
    )
    expect(error).toMatchObject({ code: 'E_CONSENT', field: '2.to' })
    expect(String((error as Error).message)).toMatch(/jobs\[2\]: to:/)
    expect(consents.calls).toEqual([['a@example.com', 'b@example.com']])
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('quiet hours hold advertising to the end of the window; other mail is not held', async () => {
    const now = Date.now()
    const wall = wallTimeAt(now, 'Asia/Seoul')
    const clock = (minutes: number) => {
      const m = (((wall.hour * 60 + wall.minute + minutes) % 1440) + 1440) % 1440
      return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`
    }
    const quietHours = { timeZone: 'Asia/Seoul', from: clock(-60), to: clock(60) }
    const { queue: q } = queue({ consent: consentsFor('reader@example.com').lookup, quietHours })
    const held = await q.enqueue(adJob())
    expect(held.status).toBe('scheduled')
    const expected = nextLocalTime(quietHours.to, 'Asia/Seoul', now)
    expect((await q.getStatus(held.id))?.dueAt).toBe(expected)
    const plain = await q.enqueue({ type: 'receipt', to: 'a@example.com', subject: 'Receipt', text: 'x' })
    expect(plain.status).toBe('queued')
  })
})

describe('the advertising profile in enqueueBatch', () => {
  test('recipients without consent are left out and counted; the others are written', async () => {
    const consents = consentsFor('a@example.com', 'c@example.com')
    const { queue: q, prefix } = queue({ consent: consents.lookup })
    const recipients = ['a@example.com', 'b@example.com', 'C@example.com', 'd@example.com', 'e@example.com']
    const result = await q.enqueueBatch('spring-sale', recipients, undefined, {
      subject: '봄 세일',
      html: `<h1>봄 세일</h1>${footer}`,
      text: `봄 세일\n${footerText}`,
      advertising: true,
    })
    expect(result).toMatchObject({ total: 5, enqueued: 2, withoutConsent: 3, duplicates: 0, invalid: 0 })
    expect(await redis.xlen(`${prefix}:send:low`)).toBe(2)
    expect(consents.calls).toEqual([recipients.map((address) => address.toLowerCase())])
    const entries = (await redis.xrange(`${prefix}:send:low`, '-', '+')) as [string, string[]][]
    for (const [, fields] of entries) {
      expect(payloadOf(fields)).toMatchObject({
        subject: '(광고) 봄 세일',
        advertising: true,
      })
    }
  })

  test('a batch subject with a look-alike, or an ordinary batch marked (광고), is refused before anything is written', async () => {
    const { queue: q, prefix } = queue({ consent: consentsFor('a@example.com').lookup })
    const body = { html: footer, text: footerText }
    expect(
      await rejection(
        q.enqueueBatch('b1', ['a@example.com'], undefined, { ...body, subject: '[광고] 세일', advertising: true }),
      ),
    ).toMatchObject({ code: 'E_VALIDATION', field: 'subject' })
    expect(
      await rejection(q.enqueueBatch('b2', ['a@example.com'], undefined, { ...body, subject: '(광고) 소식' })),
    ).toMatchObject({ code: 'E_VALIDATION', field: 'subject' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })

  test('a batch may not state the transaction exception, nor be advertising without the profile', async () => {
    const { queue: q, prefix } = queue({})
    const options = { subject: 'x', html: footer, text: footerText }
    expect(
      await rejection(
        q.enqueueBatch('b1', ['a@example.com'], undefined, {
          ...options,
          advertising: { transactionEndedAt: Date.now() } as never,
        }),
      ),
    ).toMatchObject({ code: 'E_VALIDATION', field: 'options.advertising' })
    const { queue: plain } = queue(undefined)
    expect(
      await rejection(plain.enqueueBatch('b2', ['a@example.com'], undefined, { ...options, advertising: true })),
    ).toMatchObject({ code: 'E_VALIDATION', field: 'options.advertising' })
    expect(await keysOf(redis, prefix)).toEqual([])
  })
})
