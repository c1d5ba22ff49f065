import { describe, expect, it } from 'vitest'
import { dayKey, nextDayStart, WARMUP_SCHEDULES } from '../../src/providers/warmup.js'

describe('warm-up days', () => {
  it('keys a day in its time zone', () => {
    const at = Date.UTC(2026, 11, 3, 15, 30) // 00:30 on 4 December in Seoul
    expect(dayKey(at, 'Asia/Seoul')).toBe('20261204')
    expect(dayKey(at, 'UTC')).toBe('20261203')
    expect(nextDayStart(at, 'Asia/Seoul')).toBe(Date.UTC(2026, 11, 4, 15, 0))
    expect(nextDayStart(at, 'UTC')).toBe(Date.UTC(2026, 11, 4, 0, 0))
  })

  it('has schedules that only grow', () => {
    for (const caps of Object.values(WARMUP_SCHEDULES)) {
      for (let i = 1; i < caps.length; i++) expect(caps[i]).toBeGreaterThan(caps[i - 1] as number)
    }
  })
})
