// Delivery at the reader's local time and the sending calendar, against a real Redis: what the
// delayed set and the status hash hold. The clock is the real one, so each expected instant is
// worked out for the times just before and just after the call (equal unless the call straddles
// the minute that matters) and its wall-clock reading checked too.
import { afterEach, describe, expect, test } from 'vitest'
import {
  batchJobId,
  createEmailQueue,
  createSendingCalendar,
  type EmailQueue,
  type EmailQueueOptions,
  MailstreamError,
  nextLocalTime,
} from '../../src/index.js'
import { wallTimeAt } from '../../src/zoned-time.js'
import { connect, keysOf, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
const queues: EmailQueue[] = []
afterEach(async () => {
  await Promise.all(queues.splice(0).map((queue) => queue.close()))
})

function newQueue(options: Partial<EmailQueueOptions> = {}): EmailQueue {
  const queue = createEmailQueue({ redis, prefix: uniquePrefix('lt'), ...options })
  queues.push(queue)
  return queue
}

const WEEKDAYS_SEOUL = { timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '20:00' }
const calendar = createSendingCalendar(WEEKDAYS_SEOUL)
const job = (fields: object) => ({ type: 'reminder', to: 'reader@example.com', subject: 'S', text: 'T', ...fields })

/** Runs `call`, and returns its result with the instants before and after it. */
async function timed<T>(call: () => Promise<T>): Promise<{ result: T; before: number; after: number }> {
  const before = Date.now()
  const result = await call()
  return { result, before, after: Date.now() }
}

/** The job's due time, as both the delayed set and its status hash hold it. */
async function dueOf(queue: EmailQueue, id: string): Promise<number> {
  const score = await redis.zscore(`${queue.prefix}:delayed`, id)
  expect(score, `${id} in the delayed set`).not.toBeNull()
  const state = await queue.getStatus(id)
  expect(state?.status).toBe('scheduled')
  expect(state?.dueAt).toBe(Number(score))
  return Number(score)
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

describe('deliverAt', () => {
  test('a job is scheduled at the next time its zone reads the local time', async () => {
    const queue = newQueue()
    for (const [local, timeZone] of [
      ['07:15', 'America/New_York'],
      ['09:00', 'Europe/Berlin'],
      ['23:45', 'Asia/Seoul'],
    ] as const) {
      const { result, before, after } = await timed(() => queue.enqueue(job({ deliverAt: { local, timeZone } })))
      expect(result.status).toBe('scheduled')
      const due = await dueOf(queue, result.id)
      expect([nextLocalTime(local, timeZone, before), nextLocalTime(local, timeZone, after)]).toContain(due)
      expect(due - after).toBeLessThanOrEqual(25 * 3600_000) // within a day (and an hour of daylight saving)
      const wall = wallTimeAt(due, timeZone)
      expect(`${String(wall.hour).padStart(2, '0')}:${String(wall.minute).padStart(2, '0')}`).toBe(local)
    }
  })

  test('enqueueMany computes each job in its own zone', async () => {
    const queue = newQueue()
    const zones = ['America/New_York', 'Europe/Berlin', 'Asia/Seoul']
    const { result, before, after } = await timed(() =>
      queue.enqueueMany(zones.map((timeZone) => job({ deliverAt: { local: '06:30', timeZone } }))),
    )
    const dues = await Promise.all(result.map(({ id }) => dueOf(queue, id)))
    dues.forEach((due, index) => {
      const zone = zones[index] as string
      expect([nextLocalTime('06:30', zone, before), nextLocalTime('06:30', zone, after)]).toContain(due)
    })
    expect(new Set(dues).size).toBe(3)
  })

  test('batch recipients in three zones each get their own instant; the batch zone is the default', async () => {
    const queue = newQueue()
    const recipients = [
      { to: 'seoul@example.com' },
      { to: 'newyork@example.com', timeZone: 'America/New_York' },
      { to: 'berlin@example.com', timeZone: 'Europe/Berlin' },
      { to: 'utc@example.com', deliverAt: { local: '18:30', timeZone: 'UTC' } },
    ]
    const { result, before, after } = await timed(() =>
      queue.enqueueBatch('issue-tz', recipients, undefined, {
        subject: 'Issue',
        text: 'Hi',
        deliverAt: { local: '08:00', timeZone: 'Asia/Seoul' },
      }),
    )
    expect(result).toMatchObject({ total: 4, enqueued: 4, invalid: 0 })
    const expected: [string, string, string][] = [
      ['seoul@example.com', '08:00', 'Asia/Seoul'],
      ['newyork@example.com', '08:00', 'America/New_York'],
      ['berlin@example.com', '08:00', 'Europe/Berlin'],
      ['utc@example.com', '18:30', 'UTC'],
    ]
    const dues: number[] = []
    for (const [address, local, zone] of expected) {
      const due = await dueOf(queue, batchJobId('issue-tz', address))
      expect([nextLocalTime(local, zone, before), nextLocalTime(local, zone, after)], address).toContain(due)
      dues.push(due)
    }
    expect(new Set(dues).size).toBe(4)
  })
})

describe('sending calendar', () => {
  test('a newsletter due at 22:00 Seoul goes at 09:00 on the next weekday; a verification code is left alone', async () => {
    const queue = newQueue({ sendingCalendar: WEEKDAYS_SEOUL })
    const late = { local: '22:00', timeZone: 'Asia/Seoul' }
    const {
      result: letter,
      before,
      after,
    } = await timed(() => queue.enqueue(job({ type: 'newsletter', deliverAt: late })))
    const due = await dueOf(queue, letter.id)
    const tonight = [nextLocalTime('22:00', 'Asia/Seoul', before), nextLocalTime('22:00', 'Asia/Seoul', after)]
    expect(tonight.map((at) => calendar.nextOpen(at))).toContain(due)
    const wall = wallTimeAt(due, 'Asia/Seoul')
    expect(wall).toMatchObject({ hour: 9, minute: 0 })
    expect([1, 2, 3, 4, 5]).toContain(wall.weekday)
    // The next morning (11 h after 22:00), or Monday's after a Friday or a weekend.
    const held = due - (tonight[0] as number)
    expect(held === 11 * 3600_000 || held === 59 * 3600_000 || held === 35 * 3600_000).toBe(true)

    const code = await queue.enqueue(job({ type: 'verification-code', deliverAt: late }))
    const codeDue = await dueOf(queue, code.id)
    expect(tonight).toContain(codeDue)
    expect(wallTimeAt(codeDue, 'Asia/Seoul')).toMatchObject({ hour: 22, minute: 0 })
  })

  test('every job of a batch is held, each after its own local time', async () => {
    const queue = newQueue({ sendingCalendar: WEEKDAYS_SEOUL })
    const { before, after } = await timed(() =>
      queue.enqueueBatch(
        'issue-cal',
        [{ to: 'seoul@example.com' }, { to: 'newyork@example.com', timeZone: 'America/New_York' }],
        undefined,
        { type: 'announcement', subject: 'Issue', text: 'Hi', deliverAt: { local: '21:00', timeZone: 'Asia/Seoul' } },
      ),
    )
    for (const [address, zone] of [
      ['seoul@example.com', 'Asia/Seoul'],
      ['newyork@example.com', 'America/New_York'],
    ] as const) {
      const due = await dueOf(queue, batchJobId('issue-cal', address))
      const local = [nextLocalTime('21:00', zone, before), nextLocalTime('21:00', zone, after)]
      expect(
        local.map((at) => calendar.nextOpen(at)),
        address,
      ).toContain(due)
      expect(calendar.isOpen(due)).toBe(true)
    }
  })
})

describe('with the Korean advertising profile', () => {
  test("an advertising batch's quiet hours (Seoul, 21:00-08:00) hold each recipient after its own local time", async () => {
    const sender = {
      name: '주식회사 밸리티',
      email: 'ad@vality.kr',
      phone: '02-1234-5678',
      address: '서울특별시 중구 세종대로 110',
    }
    const footer = `${sender.name} ${sender.email} ${sender.phone} ${sender.address}`
    const addresses = ['seoul@example.com', 'newyork@example.com']
    const queue = newQueue({
      advertising: {
        sender,
        consent: async (asked: string[]) => asked.map((address) => ({ address, consentedAt: 0 })),
      },
    })
    const { result, before, after } = await timed(() =>
      queue.enqueueBatch(
        'sale-tz',
        [{ to: addresses[0] as string }, { to: addresses[1] as string, timeZone: 'America/New_York' }],
        undefined,
        {
          subject: '봄 세일',
          html: `<p>봄 세일</p><p>${footer}</p><p><a href="https://vality.kr/unsubscribe">수신거부</a></p>`,
          text: `봄 세일\n${footer}\n수신거부 https://vality.kr/unsubscribe`,
          advertising: true,
          deliverAt: { local: '22:00', timeZone: 'Asia/Seoul' },
        },
      ),
    )
    expect(result).toMatchObject({ enqueued: 2 })
    // 22:00 in Seoul is inside the quiet hours: 08:00 the next morning.
    const seoul = await dueOf(queue, batchJobId('sale-tz', 'seoul@example.com'))
    const tonight = [nextLocalTime('22:00', 'Asia/Seoul', before), nextLocalTime('22:00', 'Asia/Seoul', after)]
    expect(tonight.map((at) => at + 10 * 3600_000)).toContain(seoul)
    expect(wallTimeAt(seoul, 'Asia/Seoul')).toMatchObject({ hour: 8, minute: 0 })
    // 22:00 in New York is 11:00 or 12:00 in Seoul: not held.
    const newYork = await dueOf(queue, batchJobId('sale-tz', 'newyork@example.com'))
    const local = [
      nextLocalTime('22:00', 'America/New_York', before),
      nextLocalTime('22:00', 'America/New_York', after),
    ]
    expect(local).toContain(newYork)
  })
})

describe('refused input writes nothing', () => {
  test('a bad deliverAt on enqueue, enqueueMany or enqueueBatch', async () => {
    const queue = newQueue({ sendingCalendar: WEEKDAYS_SEOUL })
    const good = { local: '09:00', timeZone: 'Asia/Seoul' }
    const cases: [Promise<unknown>, string][] = [
      [queue.enqueue(job({ deliverAt: { local: '09:00', timeZone: 'Asia/Tokio' } })), 'deliverAt.timeZone'],
      [queue.enqueue(job({ deliverAt: { local: '9:00', timeZone: 'Asia/Seoul' } })), 'deliverAt.local'],
      [queue.enqueue(job({ deliverAt: good, delayMs: 10 })), 'deliverAt'],
      [queue.enqueueMany([job({ deliverAt: good }), job({ deliverAt: { ...good, local: 9 } })]), '1.deliverAt.local'],
      [
        queue.enqueueBatch('issue-bad', ['a@example.com'], undefined, {
          subject: 'S',
          text: 'T',
          deliverAt: { local: '09:00', timeZone: 'Korea/Seoul' },
        }),
        'deliverAt.timeZone',
      ],
      [
        queue.enqueueBatch('issue-bad', [{ to: 'a@example.com', deliverAt: good }], undefined, {
          subject: 'S',
          text: 'T',
          sendAt: Date.now() + 60_000,
        }),
        'recipients.0.deliverAt',
      ],
    ]
    for (const [call, field] of cases) {
      expect(await rejection(call), field).toMatchObject({ code: 'E_VALIDATION', field })
    }
    const written = await keysOf(redis, queue.prefix)
    // A batch whose first recipient is refused has opened its batch hash, and no job.
    expect(written.filter((key) => !key.endsWith(':batch:issue-bad'))).toEqual([])
  })
})
