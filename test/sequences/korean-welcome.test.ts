import { describe, expect, test } from 'vitest'
import { createTemplateRenderer } from '../../src/index.js'
import { createSequences, koreanWelcomeSeries } from '../../src/sequences/index.js'
import { harness } from '../helpers/queue.js'
import { connect, uniquePrefix, waitUntil } from '../helpers/redis.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 0, 5, 1, 0)
const redis = connect()
const options = {
  brandName: '메일스트림',
  bestOf: { title: '이번 주 베스트', body: '가장 많이 읽힌 글 **세 편**을 모았습니다.' },
  feedbackUrl: 'https://example.com/feedback',
}

describe('the Korean welcome series', () => {
  test('welcome now, the best-of issue on day 3, the feedback request on day 7; none after an unsubscribe', async () => {
    const templates = createTemplateRenderer({
      locale: 'ko',
      defaults: { brandName: '메일스트림', frontendUrl: 'https://example.com' },
      unsubscribe: { secret: 'an-unsubscribe-secret-of-16+' },
    })
    const t = harness(redis, uniquePrefix('seq-ko'))
    t.worker({ templates }).start()
    const clock = { now: START }
    const series = koreanWelcomeSeries(options)
    const runner = createSequences({ queue: t.queue, sequences: [series], now: () => clock.now })
    await runner.enroll('welcome-ko', { address: 'stays@example.com', name: '김하늘', locale: 'ko' })
    await runner.enroll('welcome-ko', { address: 'leaves@example.com', locale: 'ko' })
    const subjects = (address: string) =>
      t.transport.messages
        .filter(({ message }) => message.to.some((to) => to.address === address))
        .map(({ message }) => message.subject)

    const runAt = async (ms: number, total: number) => {
      clock.now = ms
      await runner.runOnce()
      await waitUntil(() => t.transport.messages.length >= total, 10_000, `${total} emails`)
    }
    await runAt(START, 2)
    expect(subjects('stays@example.com')).toEqual(['메일스트림에 오신 것을 환영합니다'])
    await runAt(START + 3 * DAY, 4)
    expect(subjects('stays@example.com')[1]).toBe('[메일스트림] 이번 주 베스트')
    // One reader unsubscribes on day 5 (the unsubscribe page adds them to the suppression list).
    await t.queue.suppression.add('leaves@example.com', 'unsubscribe')
    await runAt(START + 7 * DAY, 5)
    expect(subjects('stays@example.com')[2]).toBe('[메일스트림] 일주일 동안 어떠셨나요?')
    expect(subjects('leaves@example.com')).toHaveLength(2)
    const feedback = t.transport.messages.at(-1)?.message
    expect(feedback?.text).toContain('김하늘님')
    expect(feedback?.html).toContain('href="https://example.com/feedback"')
    expect(await runner.get('welcome-ko', 'leaves@example.com')).toMatchObject({
      status: 'exited',
      exitReason: 'suppressed',
    })
    const stats = await runner.stats('welcome-ko')
    expect(stats).toMatchObject({ enrolled: 2, done: 1, exited: 1, exitReasons: { suppressed: 1 } })
    expect(stats.steps.map((step) => [step.id, step.sent])).toEqual([
      ['welcome', 2],
      ['delay-1', 0],
      ['best-of', 2],
      ['delay-2', 0],
      ['feedback', 1],
    ])
  })

  test('bad options throw E_CONFIG naming the field', () => {
    expect(() => koreanWelcomeSeries({ ...options, feedbackUrl: 'javascript:alert(1)' })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'feedbackUrl' }),
    )
    expect(() => koreanWelcomeSeries({ ...options, brandName: '' })).toThrow(
      expect.objectContaining({ field: 'brandName' }),
    )
  })
})
