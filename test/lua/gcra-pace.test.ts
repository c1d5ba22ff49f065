import { describe, expect, test } from 'vitest'
import { gcraPace, gcraSlowDown, type PaceCall, type ProviderCharge } from '../../src/lua/gcra.js'
import { defineScripts } from '../../src/lua/index.js'
import { sameSlotKey } from '../../src/worker/providers.js'
import { connect, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
defineScripts(redis)

async function serverNow(): Promise<number> {
  const [seconds, micros] = await redis.time()
  return Number(seconds) * 1000 + Number(micros) / 1000
}

function limiters(perSecond: number, providers: Record<string, number>) {
  const key = `rate:limit:{${uniquePrefix('pace')}}:send`
  const provider = (name: string, cost = 1): ProviderCharge => ({
    provider: name,
    key: sameSlotKey(key, `:provider:${name}`),
    stateKey: sameSlotKey(key, `:provider:${name}:state`),
    warmKey: sameSlotKey(key, `:provider:${name}:warmup`),
    intervalMs: 1000 / (providers[name] as number),
    burst: 1,
    cost,
    step: 0.25,
    cooldownMs: 400,
  })
  const call = (charges: ProviderCharge[], cost = 1, over: Partial<PaceCall> = {}): PaceCall => ({
    key,
    intervalMs: 1000 / perSecond,
    burst: 1,
    cost,
    parkAfterMs: 1_000_000,
    horizonMs: 10_000_000,
    lateMs: 1000,
    providers: charges,
    ...over,
  })
  return { key, provider, call }
}

/** Most units in any window of `windowMs` among sends at `times` (each [time, units]). */
function maxInWindow(times: [number, number][], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a[0] - b[0])
  let best = 0
  let sum = 0
  let start = 0
  for (let end = 0; end < sorted.length; end++) {
    sum += (sorted[end] as [number, number])[1]
    while ((sorted[start] as [number, number])[0] <= (sorted[end] as [number, number])[0] - windowMs) {
      sum -= (sorted[start] as [number, number])[1]
      start++
    }
    best = Math.max(best, sum)
  }
  return best
}

describe('lua/gcra pace mode', () => {
  test('sends it schedules keep every provider and the global limit within their rates over any window', async () => {
    // Global 300/s, naver 50/s, gmail 150/s, other unlimited; jobs of 1-3 recipients in a random mix,
    // fed as fast as the calls go. Parked jobs come back at their slot and go on it (the worker's way).
    const { provider, call } = limiters(300, { naver: 50, gmail: 150 })
    const sends: Record<string, [number, number][]> = { naver: [], gmail: [], all: [] }
    let seed = 7
    const random = () => {
      seed = (seed * 16807) % 2147483647
      return seed / 2147483647
    }
    const jobs = Array.from({ length: 200 }, () => {
      const pick = random()
      return { cost: 1 + Math.floor(random() * 3), name: pick < 0.3 ? 'naver' : pick < 0.7 ? 'gmail' : 'other' }
    })
    const parked: { job: (typeof jobs)[number]; slot: number; dueAt: number }[] = []
    const park = { parkAfterMs: 0, lateMs: 5 }
    let parks = 0
    const deadline = performance.now() + 15_000
    while ((jobs.length > 0 || parked.length > 0) && performance.now() < deadline) {
      const dueIndex = parked.findIndex((one) => one.dueAt <= performance.now())
      const back = dueIndex >= 0 ? parked.splice(dueIndex, 1)[0] : undefined
      const job = back?.job ?? jobs.shift()
      if (!job) {
        await new Promise((resolve) => setTimeout(resolve, 1))
        continue
      }
      const charges =
        job.name === 'other' ? [] : [{ ...provider(job.name, job.cost), ...(back && { slot: back.slot }) }]
      const now = await serverNow()
      const reply = await gcraPace(redis, call(charges, job.cost, park))
      if (reply.state === 'parked') {
        parks++
        parked.push({ job, slot: reply.providerAt, dueAt: performance.now() + reply.providerWaitMs })
        continue
      }
      expect(reply.state).toBe('go')
      const at = now + reply.waitMs
      sends.all?.push([at, job.cost])
      if (job.name !== 'other') sends[job.name]?.push([at, job.cost])
    }
    expect(jobs.length + parked.length).toBe(0)
    expect(parks).toBeGreaterThan(50)
    // burst + (W + lateMs) / interval units at most in any window W, + the largest job (taken whole
    // from a full bucket), + 2 ms for reading the time apart from the call (TIME, then the script).
    for (const windowMs of [20, 100, 500, 2000]) {
      const bound = (perSecond: number) => 1 + ((windowMs + park.lateMs + 2) * perSecond) / 1000 + 3
      expect(maxInWindow(sends.naver as [number, number][], windowMs)).toBeLessThanOrEqual(bound(50))
      expect(maxInWindow(sends.gmail as [number, number][], windowMs)).toBeLessThanOrEqual(bound(150))
      expect(maxInWindow(sends.all as [number, number][], windowMs)).toBeLessThanOrEqual(bound(300))
    }
    // The naver jobs alone need about 2 s at 50/s: the schedule really ran into the provider limit.
    const naverUnits = (sends.naver as [number, number][]).reduce((sum, [, units]) => sum + units, 0)
    expect(naverUnits).toBeGreaterThan(80)
    // And naver got its rate: its units went in about the time its rate needs.
    const naverTimes = (sends.naver as [number, number][]).map(([at]) => at)
    const span = Math.max(...naverTimes) - Math.min(...naverTimes)
    expect(span).toBeLessThan((naverUnits / 50) * 1000 * 2.5)
  }, 30_000)

  test('a provider out of budget parks: only its units are reserved, the global limiter is untouched', async () => {
    const { key, provider, call } = limiters(100, { naver: 2 })
    const park = { parkAfterMs: 100, horizonMs: 5000 }
    const first = await gcraPace(redis, call([provider('naver')], 1, park))
    expect(first.state).toBe('go')
    const globalTat = await redis.get(key)
    const second = await gcraPace(redis, call([provider('naver')], 1, park))
    expect(second.state).toBe('parked')
    expect(second.providerWaitMs).toBeGreaterThan(400)
    expect(second.providerWaitMs).toBeLessThanOrEqual(500)
    // The global limiter is as the first call left it; the next naver slot moved one interval on.
    expect(await redis.get(key)).toBe(globalTat)
    const third = await gcraPace(redis, call([provider('naver')], 1, park))
    expect(third.state).toBe('parked')
    expect(third.providerWaitMs).toBeGreaterThan(900)
    // Beyond the horizon nothing is reserved.
    const naverTat = await redis.get(sameSlotKey(key, ':provider:naver'))
    const far = await gcraPace(redis, call([provider('naver')], 1, { parkAfterMs: 100, horizonMs: 1000 }))
    expect(far.state).toBe('full')
    expect(far.providerWaitMs).toBeGreaterThan(1000)
    expect(await redis.get(sameSlotKey(key, ':provider:naver'))).toBe(naverTat)
    // Another provider goes at once meanwhile.
    const other = await gcraPace(redis, call([], 1, park))
    expect(other.state).toBe('go')
    expect(other.waitMs).toBeLessThanOrEqual(10)
  })

  test('all or nothing: negative costs give back every limiter charged', async () => {
    // One a second: the 3 s charged stay ahead of the clock however slow the machine is between calls.
    const { key, provider, call } = limiters(1, { naver: 1 })
    await gcraPace(redis, call([provider('naver', 3)], 3))
    const charged = [await redis.get(key), await redis.get(sameSlotKey(key, ':provider:naver'))].map(Number)
    await gcraPace(redis, call([provider('naver', -3)], -3))
    const back = [await redis.get(key), await redis.get(sameSlotKey(key, ':provider:naver'))].map(Number)
    expect((charged[0] as number) - (back[0] as number)).toBeCloseTo(3000, 0)
    expect((charged[1] as number) - (back[1] as number)).toBeCloseTo(3000, 0)
  })

  test('slow-down halves a provider, once per guard time, and the rate comes back step by step', async () => {
    const { provider, call } = limiters(1000, { naver: 100 })
    const naver = provider('naver')
    const slow = { decrease: 0.5, minFactor: 0.1, step: 0.25, cooldownMs: 400, guardMs: 200 }
    expect(await gcraSlowDown(redis, naver.stateKey, slow)).toEqual({ decreased: true, factor: 0.5 })
    expect(await gcraSlowDown(redis, naver.stateKey, slow)).toEqual({ decreased: false, factor: 0.5 })
    const slowed = await gcraPace(redis, call([naver]))
    expect(slowed.factors).toEqual([0.5])
    await new Promise((resolve) => setTimeout(resolve, 450))
    expect((await gcraPace(redis, call([naver]))).factors).toEqual([0.75])
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect((await gcraPace(redis, call([naver]))).factors).toEqual([1])
    // Dropped from Redis once it is back to full.
    expect(await redis.pttl(naver.stateKey)).toBeGreaterThan(0)
  })

  test('provider keys share the hash slot of the global key', () => {
    expect(sameSlotKey('rate:limit:{email}:send', ':provider:naver')).toBe('rate:limit:{email}:send:provider:naver')
    expect(sameSlotKey('rate:limit:email:send', ':provider:naver')).toBe('{rate:limit:email:send}:provider:naver')
  })

  test('warm-up: a daily cap per provider that grows per sending day; a day without a send does not count', async () => {
    const { provider, call } = limiters(100_000, { naver: 100_000 })
    const caps = [2, 4, 8]
    const on = (today: string, cost = 1, counting = true) =>
      gcraPace(redis, call([{ ...provider('naver', cost), warmup: { today, counting, caps } }], cost))
    const states = async (today: string, times: number, counting = true) => {
      const out: string[] = []
      for (let i = 0; i < times; i++) out.push((await on(today, 1, counting)).state)
      return out
    }
    // Before the start date: day 1's cap, and the day does not count.
    expect(await states('20261130', 3, false)).toEqual(['go', 'go', 'capped'])
    // Day 1 (the start): 2.
    expect(await states('20261201', 3)).toEqual(['go', 'go', 'capped'])
    // Nothing sent on the 2nd: the 3rd is sending day 2, cap 4; a job of 3 recipients does not fit after 2.
    expect(await states('20261203', 2)).toEqual(['go', 'go'])
    expect((await on('20261203', 3)).state).toBe('capped')
    expect(await states('20261203', 3)).toEqual(['go', 'go', 'capped'])
    // Day 3: 8; past the schedule, no cap.
    expect(await states('20261204', 9)).toEqual([...Array(8).fill('go'), 'capped'])
    expect(await states('20261205', 20)).toEqual(Array(20).fill('go'))
    // A capped call charged nothing: units given back also give back today's count.
    const back = await gcraPace(
      redis,
      call([{ ...provider('naver', -1), warmup: { today: '20261205', counting: true, caps } }], -1),
    )
    expect(back.state).toBe('go')
  })
})
