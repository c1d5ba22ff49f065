import { describe, expect, test } from 'vitest'
import { parseJob } from '../../src/job.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'

const redis = connect()

describe('providers stored at enqueue', () => {
  test('each job carries its recipients per provider, enqueue and enqueueMany alike, due now or later', async () => {
    const { queue, prefix } = harness(redis)
    await queue.enqueue({
      id: 'p1',
      type: 'welcome',
      to: 'Kim <kim@NAVER.com>',
      cc: ['lee@daum.net', 'park@hanmail.net'],
      bcc: 'KIM@naver.com',
      subject: 'Hi',
      text: 'Hi',
    })
    await queue.enqueueMany([
      { id: 'p2', type: 'welcome', to: 'a@googlemail.com', subject: 'Hi', text: 'Hi' },
      { id: 'p3', type: 'welcome', to: 'a@corp.example', subject: 'Hi', text: 'Hi', delayMs: 60_000 },
    ])
    const entries = await redis.xrange(`${prefix}:send:normal`, '-', '+')
    const payloads = new Map<string, string>()
    for (const [, fields] of entries) payloads.set(fields[1] as string, fields[3] as string)
    payloads.set('p3', (await redis.hget(`${prefix}:status:p3`, 'job')) as string)
    // The same address twice (any case) is one recipient, as the rate limit counts it.
    expect(parseJob(payloads.get('p1'))?.providers).toEqual({ naver: 1, kakao: 2 })
    expect(parseJob(payloads.get('p2'))?.providers).toEqual({ gmail: 1 })
    expect(parseJob(payloads.get('p3'))?.providers).toEqual({ other: 1 })
  })
})
