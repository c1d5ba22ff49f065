// deliverAt on the in-memory test queue: jobs go when its virtual clock reaches the reader's local
// time, across New York's spring-forward night. No Redis, no sleeping.
import { describe, expect, test } from 'vitest'
import { createTestQueue } from '../../src/testing/index.js'

const FROM = 'Vality <noreply@vality.kr>'
const MINUTE = 60_000

describe('deliverAt on the test queue', () => {
  test('a job due at 09:00 New York on 2026-03-08 goes at 13:00 UTC (EDT), not an hour later', async () => {
    const queue = createTestQueue({ from: FROM, now: Date.parse('2026-03-07T20:00:00Z') }) // Sat 15:00 EST
    const { id, status } = await queue.enqueue({
      type: 'reminder',
      to: 'ann@example.com',
      subject: 'Good morning',
      text: 'Hi',
      deliverAt: { local: '09:00', timeZone: 'America/New_York' },
    })
    expect(status).toBe('scheduled')
    expect((await queue.getStatus(id))?.dueAt).toBe(Date.parse('2026-03-08T13:00:00Z'))
    expect(await queue.advance(Date.parse('2026-03-08T13:00:00Z') - queue.now - MINUTE)).toEqual([])
    expect(await queue.advance(MINUTE)).toHaveLength(1)
  })

  test('batch recipients in three zones go one by one as each local 09:00 comes', async () => {
    const start = Date.parse('2026-12-03T08:00:30Z') // Thu 17:00 Seoul, 09:00 Berlin, 03:00 New York
    const queue = createTestQueue({ from: FROM, now: start })
    const recipients = [
      { to: 'kim@example.kr' },
      { to: 'jan@example.de', timeZone: 'Europe/Berlin' },
      { to: 'ann@example.com', timeZone: 'America/New_York' },
    ]
    const result = await queue.enqueueBatch('issue-9', recipients, undefined, {
      subject: 'Issue 9',
      text: 'Hi',
      deliverAt: { local: '09:00', timeZone: 'Asia/Seoul' },
    })
    expect(result.enqueued).toBe(3)
    const order = (await queue.runAll()).map((delivery) => [
      delivery.message.to[0]?.address,
      new Date(delivery.sentAt).toISOString(),
    ])
    expect(order).toEqual([
      ['ann@example.com', '2026-12-03T14:00:00.000Z'],
      ['kim@example.kr', '2026-12-04T00:00:00.000Z'],
      ['jan@example.de', '2026-12-04T08:00:00.000Z'],
    ])
  })
})
