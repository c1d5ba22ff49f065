import { describe, expect, test } from 'vitest'
import type { QueueKeys } from '../../src/keys.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run, queue } = createScriptTestbed()
const AT = 1_700_000_000_000
const DEDUPE_TTL = 600
const TRACKING_TTL = 3600

type Reply = [string, string, number, number] | [string, string]

interface Event {
  sns: string
  kind: string
  bounceType?: string
  messageId?: string
  jobId?: string
  batchId?: string
  hook?: 'hook' | 'done'
  suppress?: [string, string][]
  at?: number
}

function sesEvent(keys: QueueKeys, event: Event) {
  const dedupe = keys.sns(event.sns)
  return run<Reply>(
    'sesEvent',
    [
      dedupe,
      keys.stats,
      keys.suppressed,
      keys.ses(event.messageId ?? 'ses-1'),
      event.jobId ? keys.status(event.jobId) : dedupe,
      event.batchId ? keys.batch(event.batchId) : dedupe,
    ],
    [
      DEDUPE_TTL,
      TRACKING_TTL,
      event.hook ?? 'done',
      event.kind,
      event.bounceType ?? '',
      event.at ?? AT,
      '',
      ...(event.suppress ?? []).flat(),
    ],
  )
}

describe('lua/ses-event', () => {
  test('a delivery counts once in the stats, the batch and the tracking hash, and updates the job', async () => {
    const keys = await queue()
    await redis.hset(keys.status('j1'), 'status', 'sent')
    await redis.hset(keys.batch('b1'), 'total', 1)
    const event = { kind: 'delivery', jobId: 'j1', batchId: 'b1' }
    expect(await sesEvent(keys, { ...event, sns: 'n1' })).toEqual(['new', 'delivered', 0, 1])
    expect(await redis.hgetall(keys.stats)).toEqual({ delivered: '1' })
    expect(await redis.hget(keys.batch('b1'), 'delivered')).toBe('1')
    expect(await redis.hgetall(keys.ses('ses-1'))).toEqual({ delivered: String(AT) })
    expect(await redis.ttl(keys.ses('ses-1'))).toBeGreaterThan(TRACKING_TTL - 5)
    expect(await redis.hgetall(keys.status('j1'))).toEqual({
      status: 'sent',
      delivery: 'delivered',
      deliveredAt: String(AT),
    })
    // Another SNS message for the same SES event counts nothing more.
    expect(await sesEvent(keys, { ...event, sns: 'n2', at: AT + 5 })).toEqual(['new', '', 0, 1])
    expect(await redis.hgetall(keys.stats)).toEqual({ delivered: '1' })
    expect(await redis.hget(keys.status('j1'), 'deliveredAt')).toBe(String(AT))
  })

  test("the same SNS message again is a duplicate that returns the dedupe key's value and writes nothing", async () => {
    const keys = await queue()
    expect((await sesEvent(keys, { sns: 'n1', kind: 'bounce', bounceType: 'Permanent', hook: 'hook' }))[0]).toBe('new')
    expect(await redis.get(keys.sns('n1'))).toBe('hook')
    const ttl = await redis.ttl(keys.sns('n1'))
    expect(ttl).toBeGreaterThan(DEDUPE_TTL - 5)
    expect(ttl).toBeLessThanOrEqual(DEDUPE_TTL)
    const stats = await redis.hgetall(keys.stats)
    expect(await sesEvent(keys, { sns: 'n1', kind: 'complaint', suppress: [['a@x.com', '{}']] })).toEqual([
      'duplicate',
      'hook',
    ])
    expect(await redis.hgetall(keys.stats)).toEqual(stats)
    expect(await redis.exists(keys.suppressed)).toBe(0)
  })

  test('a permanent bounce counts bounced and bouncedPermanent, and suppresses only new addresses', async () => {
    const keys = await queue()
    await redis.hset(keys.suppressed, 'old@x.com', '{"reason":"complaint"}')
    const reply = await sesEvent(keys, {
      sns: 'n1',
      kind: 'bounce',
      bounceType: 'Permanent',
      suppress: [
        ['a@x.com', '{"reason":"bounce"}'],
        ['old@x.com', '{"reason":"bounce"}'],
      ],
    })
    expect(reply).toEqual(['new', 'bounced,bouncedPermanent', 1, 0])
    expect(await redis.hgetall(keys.suppressed)).toEqual({
      'a@x.com': '{"reason":"bounce"}',
      'old@x.com': '{"reason":"complaint"}',
    })
  })

  test('a transient bounce and then a permanent one: bounced once, bouncedPermanent once, the type made Permanent', async () => {
    const keys = await queue()
    await redis.hset(keys.status('j1'), 'status', 'sent')
    expect(await sesEvent(keys, { sns: 'n1', kind: 'bounce', bounceType: 'Transient', jobId: 'j1' })).toEqual([
      'new',
      'bounced',
      0,
      1,
    ])
    expect(
      await sesEvent(keys, { sns: 'n2', kind: 'bounce', bounceType: 'Permanent', jobId: 'j1', at: AT + 1 }),
    ).toEqual(['new', 'bouncedPermanent', 0, 1])
    expect(await sesEvent(keys, { sns: 'n3', kind: 'bounce', bounceType: 'Transient', jobId: 'j1' })).toEqual([
      'new',
      '',
      0,
      1,
    ])
    expect(await redis.hgetall(keys.status('j1'))).toMatchObject({
      delivery: 'bounced',
      bounceType: 'Permanent',
      bouncedAt: String(AT),
    })
    expect(await redis.hgetall(keys.stats)).toEqual({ bounced: '1', bouncedPermanent: '1' })
  })

  test('the delivery state only moves forward: delayed < delivered < bounced < complained', async () => {
    const keys = await queue()
    await redis.hset(keys.status('j1'), 'status', 'sent')
    const states: (string | null)[] = []
    let n = 0
    for (const kind of ['deliveryDelay', 'delivery', 'deliveryDelay', 'complaint', 'bounce', 'delivery']) {
      await sesEvent(keys, { sns: `n${n++}`, kind, jobId: 'j1' })
      states.push(await redis.hget(keys.status('j1'), 'delivery'))
    }
    expect(states).toEqual(['delayed', 'delivered', 'delivered', 'complained', 'complained', 'complained'])
    expect(await redis.hget(keys.status('j1'), 'status')).toBe('sent')
  })

  test('opens and clicks count every event on the job, each message once in the stats', async () => {
    const keys = await queue()
    await redis.hset(keys.status('j1'), 'status', 'sent')
    for (let i = 0; i < 3; i++) await sesEvent(keys, { sns: `o${i}`, kind: 'open', jobId: 'j1', at: AT + i })
    await sesEvent(keys, { sns: 'c0', kind: 'click', jobId: 'j1' })
    expect(await redis.hgetall(keys.status('j1'))).toMatchObject({
      opens: '3',
      openedAt: String(AT),
      clicks: '1',
      clickedAt: String(AT),
    })
    expect(await redis.hgetall(keys.stats)).toEqual({ opened: '1', clicked: '1' })
    expect(await redis.hgetall(keys.ses('ses-1'))).toEqual({ opened: String(AT), clicked: String(AT) })
  })

  test('a job whose status has expired and a batch that does not exist are not created', async () => {
    const keys = await queue()
    expect(await sesEvent(keys, { sns: 'n1', kind: 'complaint', jobId: 'gone', batchId: 'gone' })).toEqual([
      'new',
      'complained',
      0,
      0,
    ])
    expect(await redis.exists(keys.status('gone'), keys.batch('gone'))).toBe(0)
    expect(await redis.hgetall(keys.stats)).toEqual({ complained: '1' })
  })

  test('a send event counts nothing and leaves no tracking hash; an unknown kind is only deduplicated', async () => {
    const keys = await queue()
    await redis.hset(keys.status('j1'), 'status', 'sent')
    expect(await sesEvent(keys, { sns: 'n1', kind: 'send', jobId: 'j1' })).toEqual(['new', '', 0, 1])
    expect(await sesEvent(keys, { sns: 'n2', kind: 'subscription', jobId: 'j1' })).toEqual(['new', '', 0, 1])
    expect(await redis.exists(keys.stats, keys.ses('ses-1'))).toBe(0)
    expect(await redis.hgetall(keys.status('j1'))).toEqual({ status: 'sent' })
    expect(await redis.exists(keys.sns('n1'), keys.sns('n2'))).toBe(2)
  })

  test('counters are per SES message: the same kind for another message counts again', async () => {
    const keys = await queue()
    await sesEvent(keys, { sns: 'n1', kind: 'reject', messageId: 'm1' })
    await sesEvent(keys, { sns: 'n2', kind: 'reject', messageId: 'm2' })
    await sesEvent(keys, { sns: 'n3', kind: 'renderingFailure', messageId: 'm2' })
    expect(await redis.hgetall(keys.stats)).toEqual({ rejected: '2', renderingFailed: '1' })
  })
})
