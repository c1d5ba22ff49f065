import { describe, expect, test } from 'vitest'
import { parseExposition } from './helpers/prometheus.js'
import { harness } from './helpers/queue.js'
import { connect, waitUntil } from './helpers/redis.js'

const redis = connect()
const job = (i: number, priority: 'high' | 'normal' | 'low' = 'normal') => ({
  type: 'newsletter',
  to: `reader${i}@example.com`,
  subject: 'Issue',
  text: 'Hello',
  priority,
})

describe('queue.metrics()', () => {
  test('parses as Prometheus text and its numbers match stats()', async () => {
    const { queue, transport, worker } = harness(redis)
    transport.failNext('never', 3)
    const sent = 40
    await queue.enqueueMany(Array.from({ length: sent + 3 }, (_, i) => job(i)))
    const w = worker({ concurrency: 5, rateLimit: { perSecond: 200, burst: 1 } })
    await w.start()
    await transport.waitForCount(sent)
    await waitUntil(async () => (await queue.stats()).totals.failed === 3)
    await w.stop()
    await queue.enqueueMany([job(100, 'high'), job(101, 'low'), job(102, 'low'), { ...job(103), delayMs: 60_000 }])

    const stats = await queue.stats()
    const metrics = parseExposition(await queue.metrics())
    for (const [priority, stream] of Object.entries(stats.streams)) {
      expect(metrics.value('mailstream_queue_waiting', { priority })).toBe(stream.waiting)
      expect(metrics.value('mailstream_queue_pending', { priority })).toBe(stream.pending)
    }
    expect(metrics.value('mailstream_queue_waiting', { priority: 'low' })).toBe(2)
    expect(metrics.value('mailstream_delayed')).toBe(stats.delayed)
    expect(metrics.value('mailstream_dead')).toBe(stats.dead)
    expect(metrics.value('mailstream_jobs_total', { outcome: 'sent' })).toBe(sent)
    expect(metrics.value('mailstream_jobs_total', { outcome: 'failed' })).toBe(3)
    expect(metrics.types.get('mailstream_jobs_total')).toBe('counter')

    // Histograms: one send_duration per transport call, one delivery_latency per sent job.
    expect(metrics.value('mailstream_send_duration_seconds_count')).toBe(sent + 3)
    expect(metrics.value('mailstream_delivery_latency_seconds_count')).toBe(sent)
    for (const name of ['send_duration', 'delivery_latency', 'rate_limit_wait']) {
      const buckets = metrics.samples.filter((sample) => sample.name === `mailstream_${name}_seconds_bucket`)
      const counts = buckets.map((bucket) => bucket.value)
      expect(counts).toEqual([...counts].sort((a, b) => a - b)) // cumulative
      expect(buckets.at(-1)?.labels.le).toBe('+Inf')
      expect(buckets.at(-1)?.value).toBe(metrics.value(`mailstream_${name}_seconds_count`))
    }
    // 43 sends at 200/s with a burst of 1: most of them waited for the limiter.
    expect(metrics.value('mailstream_rate_limit_wait_seconds_count')).toBeGreaterThan(10)
  })

  test('an empty queue gives zeros, still well formed', async () => {
    const { queue } = harness(redis)
    const metrics = parseExposition(await queue.metrics())
    expect(metrics.value('mailstream_queue_waiting', { priority: 'high' })).toBe(0)
    expect(metrics.value('mailstream_send_duration_seconds_bucket', { le: '+Inf' })).toBe(0)
  })

  test('per-provider pacing: jobs parked and slow-downs per provider, one family each', async () => {
    const { queue, transport, worker, prefix } = harness(redis)
    // naver at 20/s with a burst of 1: most of 10 naver jobs park; gmail is not limited.
    const w = worker({ concurrency: 5, rateLimit: { perSecond: 1000 }, providerRates: { naver: 20 } })
    const jobs = Array.from({ length: 12 }, (_, i) => ({
      ...job(i),
      to: i < 10 ? `n${i}@naver.com` : `g${i}@gmail.com`,
    }))
    await queue.enqueueMany(jobs)
    await w.start()
    await transport.waitForCount(12)
    await waitUntil(async () => Number(await redis.hget(`${prefix}:metrics`, 'provider_parked:naver')) > 0)
    await w.stop()
    // As the worker counts a slow-down; a field no worker writes (hostile label text) is escaped.
    await redis.hincrby(`${prefix}:metrics`, 'provider_slowdown:naver', 2)
    await redis.hincrby(`${prefix}:metrics`, 'provider_slowdown:ka"ka\\o\n', 1)

    const text = await queue.metrics()
    const metrics = parseExposition(text)
    const parked = Number(await redis.hget(`${prefix}:metrics`, 'provider_parked:naver'))
    expect(parked).toBeGreaterThan(0)
    expect(metrics.value('mailstream_provider_parked_total', { provider: 'naver' })).toBe(parked)
    expect(metrics.samples.filter((sample) => sample.name === 'mailstream_provider_parked_total')).toHaveLength(1)
    expect(metrics.value('mailstream_provider_slowdowns_total', { provider: 'naver' })).toBe(2)
    expect(metrics.types.get('mailstream_provider_slowdowns_total')).toBe('counter')
    expect(text.match(/# TYPE mailstream_provider_slowdowns_total /g)).toHaveLength(1)
    expect(text).toContain('mailstream_provider_slowdowns_total{provider="ka\\"ka\\\\o\\n"} 1')
  })
})
