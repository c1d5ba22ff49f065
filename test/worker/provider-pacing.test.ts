import { describe, expect, test } from 'vitest'
import { TransportError } from '../../src/errors.js'
import { createEmailWorker, type MailstreamError, type ProviderPaceEvent } from '../../src/index.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { harness, sendCounts, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Send times per provider (by the recipient's domain), from the memory transport. */
function recordSends(transport: ReturnType<typeof harness>['transport']) {
  const sends: Record<string, number[]> = {}
  const send = transport.send.bind(transport)
  transport.send = (message, context) => {
    const domain = message.to[0]?.address.split('@')[1] ?? ''
    const list = sends[domain] ?? []
    sends[domain] = list
    list.push(performance.now())
    return send(message, context)
  }
  return sends
}

/** Sends per second in [from, to) ms. */
const rateIn = (times: number[] | undefined, from: number, to: number) =>
  ((times ?? []).filter((at) => at >= from && at < to).length * 1000) / (to - from)

describe('per-provider pacing', () => {
  test('one provider held to its rate does not hold up the others (no head-of-line blocking)', async () => {
    const { queue, transport, worker } = harness(redis)
    const jobs = []
    for (let i = 0; i < 900; i++) {
      // Two gmail jobs for each naver job, interleaved in one stream.
      jobs.push(testJob({ to: i % 3 === 0 ? `n${i}@naver.com` : `g${i}@gmail.com` }))
    }
    await queue.enqueueMany(jobs)
    const sends = recordSends(transport)
    const retrying: boolean[] = []
    const w = worker({
      concurrency: 20,
      rateLimit: { perSecond: 200 },
      providerRates: { naver: '20/s', gmail: 100 },
      // A park is no throttle: with maxThrottles 1 a counted one would make jobs dead at once.
      maxThrottles: 1,
      schedulerIntervalMs: 50,
    })
    w.on('retrying', (event) => retrying.push(event.throttled))
    const startedAt = performance.now()
    await w.start()
    await sleep(5500)
    const gmail = rateIn(sends['gmail.com'], startedAt + 1000, startedAt + 5000)
    const naver = rateIn(sends['naver.com'], startedAt + 1000, startedAt + 5000)
    console.log(`gmail ${gmail.toFixed(1)}/s, naver ${naver.toFixed(1)}/s, parks ${retrying.length}`)
    // gmail at its own rate while naver is held to 20/s (measured within 5 %; the bounds are generous
    // for a shared machine).
    expect(gmail).toBeGreaterThan(90)
    expect(gmail).toBeLessThanOrEqual(110)
    expect(naver).toBeGreaterThan(15)
    expect(naver).toBeLessThanOrEqual(24)
    expect(retrying.length).toBeGreaterThan(0)
    expect(retrying.every((throttled) => throttled)).toBe(true)
    // Nothing is sent twice; no job died of its parks.
    expect([...sendCounts(transport).values()].every((count) => count === 1)).toBe(true)
    expect((await queue.stats()).totals.failed ?? 0).toBe(0)
  }, 25_000)

  test("a parked job uses no attempt, and is sent once at its provider's pace", async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const sends = recordSends(transport)
    const ids: string[] = []
    for (let i = 0; i < 6; i++) ids.push((await queue.enqueue(testJob({ to: `n${i}@naver.com`, maxAttempts: 1 }))).id)
    await worker({ rateLimit: { perSecond: 1000 }, providerRates: { naver: 5 }, maxThrottles: 1 }).start()
    for (const id of ids) {
      const state = await settled(id)
      expect(state.status).toBe('sent')
      expect(state.attempts).toBe(1)
    }
    const times = sends['naver.com'] as number[]
    expect(times).toHaveLength(6)
    // 5/s: six sends span about a second (the first goes at once).
    const span = (times[5] as number) - (times[0] as number)
    expect(span).toBeGreaterThan(800)
    expect(span).toBeLessThan(3000)
  }, 15_000)

  test('bad options are E_CONFIG naming the field', () => {
    const transport = createMemoryTransport()
    const make = (options: object) => () => createEmailWorker({ redis, transport, ...options })
    const field = (options: object) => {
      try {
        make(options)()
      } catch (error) {
        return (error as MailstreamError).field
      }
      return undefined
    }
    expect(field({ rateLimit: {}, providerRates: { naver: '20/x' } })).toBe('providerRates.naver')
    expect(field({ rateLimit: {}, providerRates: { Naver: 20 } })).toBe('providerRates.Naver')
    expect(field({ rateLimit: {}, providerRates: { naver: 0 } })).toBe('providerRates.naver')
    expect(field({ providerRates: { naver: 20 } })).toBe('providerRates')
    expect(field({ rateLimit: {}, providerPacing: { slowDown: { decrease: 2 } } })).toBe(
      'providerPacing.slowDown.decrease',
    )
    expect(() =>
      make({ rateLimit: {}, providerRates: { naver: '600/m', default: { perSecond: 50, burst: 5 } } })(),
    ).not.toThrow()
  })

  test('an SMTP 421 speaking of a rate slows that provider down, and its rate comes back after the cool-down', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    const sends = recordSends(transport)
    const send = transport.send.bind(transport)
    let refused = 0
    transport.send = (message, context) => {
      if (message.to[0]?.address.endsWith('@naver.com') && refused < 1) {
        refused++
        const error = new TransportError('[mailstream] [smtp] 421 4.3.1 Message rate limit exceeded, try again later', {
          retry: 'throttle',
          statusCode: 421,
        })
        return Promise.reject(error)
      }
      return send(message, context)
    }
    const events: ProviderPaceEvent[] = []
    const w = worker({
      rateLimit: { perSecond: 1000 },
      providerRates: { naver: 40, gmail: 40 },
      providerPacing: { slowDown: { cooldownMs: 300, step: 0.25, guardMs: 100 } },
    })
    w.on('providerPace', (event) => events.push(event))
    const paces: number[] = []
    w.on('pace', (event) => paces.push(event.pace))
    const jobs = []
    for (let i = 0; i < 60; i++) jobs.push(testJob({ to: i % 2 ? `g${i}@gmail.com` : `n${i}@naver.com` }))
    await queue.enqueueMany(jobs)
    await w.start()
    await waitUntil(async () => events.some((event) => event.factor === 1), 10_000, 'naver back at full rate')
    expect(events[0]).toEqual({ provider: 'naver', perSecond: 20, fullPerSecond: 40, factor: 0.5, reason: 'slow-down' })
    // Raised step by step: 0.75, then 1; only naver was touched.
    expect(events.slice(1).map((event) => [event.provider, event.factor, event.reason])).toEqual([
      ['naver', 0.75, 'recover'],
      ['naver', 1, 'recover'],
    ])
    expect(Number(await redis.hget(`${prefix}:metrics`, 'provider_slowdown:naver'))).toBe(1)
    // The worker's own pace (all providers) is left alone: gmail did not slow down.
    expect(paces).toEqual([])
    await transport.waitForCount(60)
    // Each job sent once: the refused one again after its throttle.
    expect(sends['naver.com']?.length).toBe(30)
    expect([...sendCounts(transport).values()].every((count) => count === 1)).toBe(true)
  }, 20_000)

  test('warm-up: a provider gets its daily cap, the rest waits for the next day; transactional mail is exempt', async () => {
    const { queue, transport, worker } = harness(redis)
    const today = new Date(Date.now() + 9 * 3_600_000).toISOString().slice(0, 10) // Seoul's date
    const ids: string[] = []
    for (let i = 0; i < 5; i++)
      ids.push((await queue.enqueue(testJob({ type: 'newsletter', to: `n${i}@naver.com` }))).id)
    for (let i = 0; i < 2; i++) await queue.enqueue(testJob({ type: 'welcome', to: `w${i}@naver.com` }))
    const w = worker({
      rateLimit: { perSecond: 1000 },
      providerRates: { naver: 1000 },
      providerPacing: { warmup: { startDate: today, schedule: [3, 6] } },
    })
    const delayed: number[] = []
    w.on('retrying', (event) => delayed.push(event.retryAt))
    await w.start()
    await transport.waitForCount(5)
    await waitUntil(async () => delayed.length === 2, 5000, 'two jobs over the cap re-delayed')
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(transport.messages.filter(({ message }) => message.type === 'newsletter')).toHaveLength(3)
    expect(transport.messages.filter(({ message }) => message.type === 'welcome')).toHaveLength(2)
    // Back on the next day in Seoul, within its first 10 minutes.
    const seoulMidnight = Date.parse(`${today}T00:00:00+09:00`) + 86_400_000
    for (const at of delayed) {
      expect(at).toBeGreaterThanOrEqual(seoulMidnight - 1000)
      expect(at).toBeLessThanOrEqual(seoulMidnight + 600_000 + 1000)
    }
    const states = await Promise.all(ids.map((id) => queue.getStatus(id)))
    expect(states.filter((state) => state?.status === 'throttled')).toHaveLength(2)
    expect(states.every((state) => (state?.attempts ?? 0) <= 1)).toBe(true)
  }, 15_000)

  test('bad warm-up options are E_CONFIG naming the field', () => {
    const transport = createMemoryTransport()
    const field = (warmup: object) => {
      try {
        createEmailWorker({
          redis,
          transport,
          rateLimit: {},
          providerRates: { naver: 1 },
          providerPacing: { warmup } as never,
        })
      } catch (error) {
        return (error as MailstreamError).field
      }
      return undefined
    }
    expect(field({ startDate: '2026-13-01', schedule: 'moderate' })).toBe('providerPacing.warmup.startDate')
    expect(field({ startDate: '2026-12-01', schedule: 'fast' })).toBe('providerPacing.warmup.schedule')
    expect(field({ startDate: '2026-12-01', schedule: [0] })).toBe('providerPacing.warmup.schedule.0')
    expect(field({ startDate: '2026-12-01', schedule: 'moderate', timeZone: 'Mars/Base' })).toBe(
      'providerPacing.warmup.timeZone',
    )
    expect(field({ startDate: '2026-12-01', schedule: 'conservative' })).toBeUndefined()
  })
})
