import { describe, expect, test } from 'vitest'
import { decideAbTest } from '../../src/ab-test/decision.js'
import { isMachineOpen } from '../../src/ab-test/machine.js'
import { parseAbTest, parseDuration } from '../../src/ab-test/options.js'
import { abSlot } from '../../src/ab-test/split.js'
import { MailstreamError } from '../../src/errors.js'

const addresses = Array.from({ length: 10_000 }, (_, i) => `reader${i}@example.com`)

describe('split', () => {
  test('a share of 10 000 addresses goes to the test, in equal parts per variant, the same on a second run', () => {
    const run = () => addresses.map((address) => abSlot('issue-42', address, 0.2, 3))
    const first = run()
    const inTest = first.filter((slot) => slot.inTest)
    // 2000 expected; 4 standard deviations (sqrt(10000 * 0.2 * 0.8) = 40) either side.
    expect(inTest.length).toBeGreaterThan(2000 - 160)
    expect(inTest.length).toBeLessThan(2000 + 160)
    const parts = [0, 1, 2].map((variant) => inTest.filter((slot) => slot.variant === variant).length)
    for (const part of parts)
      expect(Math.abs(part - inTest.length / 3)).toBeLessThan(4 * Math.sqrt(inTest.length / 4.5))
    expect(run()).toEqual(first)
  })

  test('the address counts in any case; another batch id splits differently', () => {
    expect(abSlot('b', 'Reader@Example.com', 0.5, 2)).toEqual(abSlot('b', 'reader@example.com', 0.5, 2))
    const here = addresses.slice(0, 500).map((address) => abSlot('issue-1', address, 0.5, 2).inTest)
    const there = addresses.slice(0, 500).map((address) => abSlot('issue-2', address, 0.5, 2).inTest)
    expect(here).not.toEqual(there)
  })

  test('a larger share keeps every recipient of a smaller one in the test', () => {
    for (const address of addresses.slice(0, 1000)) {
      if (abSlot('b', address, 0.1, 2).inTest) expect(abSlot('b', address, 0.3, 2).inTest).toBe(true)
    }
  })
})

describe('decision', () => {
  const counts = (sent: number, opened: number, clicked: number) => ({ sent, opened, clicked })

  test('the highest rate of the metric wins, with its numbers', () => {
    const decision = decideAbTest([counts(200, 80, 10), counts(200, 60, 30)], 'clicks', 100, 5)
    expect(decision).toMatchObject({ winner: 1, reason: 'best-rate', at: 5 })
    expect(decision.numbers.variants[1]).toMatchObject({ sent: 200, clicked: 30, rate: 0.15, eligible: true })
    expect(decideAbTest([counts(200, 80, 10), counts(200, 60, 30)], 'opens', 100, 5).winner).toBe(0)
  })

  test('a rate is per message sent, so a variant with fewer sends can win', () => {
    expect(decideAbTest([counts(1000, 100, 0), counts(150, 30, 0)], 'opens', 100, 0).winner).toBe(1)
  })

  test('a tie goes to the lower index; a variant under the minimum sample is not compared', () => {
    expect(decideAbTest([counts(100, 0, 5), counts(100, 0, 9), counts(100, 0, 9)], 'clicks', 100, 0)).toMatchObject({
      winner: 1,
      reason: 'tie',
    })
    expect(decideAbTest([counts(100, 0, 5), counts(99, 0, 50)], 'clicks', 100, 0)).toMatchObject({
      winner: 0,
      reason: 'best-rate',
    })
  })

  test('with no variant at the minimum sample the first one wins, and the reason says so', () => {
    const decision = decideAbTest([counts(40, 1, 1), counts(99, 50, 50)], 'clicks', 100, 0)
    expect(decision).toMatchObject({ winner: 0, reason: 'min-sample' })
    expect(decision.numbers.variants.map((variant) => variant.eligible)).toEqual([false, false])
  })
})

describe('machine opens', () => {
  test('no user agent, a bare Mozilla/5.0 (Apple Mail Privacy Protection) and scanners are machines', () => {
    for (const agent of [
      undefined,
      '',
      'Mozilla/5.0',
      'python-requests/2.31',
      'Barracuda Sentinel (EE)',
      'Googlebot/2.1',
    ]) {
      expect(isMachineOpen(agent)).toBe(true)
    }
  })

  test('mail clients and the Gmail image proxy are people', () => {
    for (const agent of [
      'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
      'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
      'Microsoft Outlook 16.0',
    ]) {
      expect(isMachineOpen(agent)).toBe(false)
    }
  })
})

describe('options', () => {
  const variants = [{ subject: 'A' }, { subject: 'B' }]
  const fieldOf = (run: () => unknown): string | undefined => {
    try {
      run()
    } catch (error) {
      expect(error).toBeInstanceOf(MailstreamError)
      return (error as MailstreamError).field
    }
    return undefined
  }

  test('durations', () => {
    expect(parseDuration('2h')).toBe(7_200_000)
    expect(parseDuration('90m')).toBe(5_400_000)
    expect(parseDuration('1.5s')).toBe(1500)
    expect(parseDuration(250)).toBe(250)
    expect(parseDuration('2 hours')).toBeUndefined()
    expect(parseDuration(-1)).toBeUndefined()
  })

  test('a valid test, with the default minimum sample', () => {
    expect(parseAbTest(variants, { share: 0.2, decideAfter: '2h', metric: 'clicks' }, 86_400)).toEqual({
      variants,
      share: 0.2,
      decideAfterMs: 7_200_000,
      metric: 'clicks',
      minSample: 100,
    })
    expect(parseAbTest(undefined, undefined, 86_400)).toBeUndefined()
  })

  test('each bad field is named', () => {
    const test_ = { share: 0.2, decideAfter: '2h', metric: 'opens' }
    expect(fieldOf(() => parseAbTest([{ subject: 'A' }], test_, 86_400))).toBe('options.variants')
    expect(fieldOf(() => parseAbTest([{ subject: 'A' }, { subject: 3 }], test_, 86_400))).toBe(
      'options.variants.1.subject',
    )
    expect(fieldOf(() => parseAbTest([{ subject: 'A' }, { from: 'x@y.z' }], test_, 86_400))).toBe(
      'options.variants.1.from',
    )
    expect(fieldOf(() => parseAbTest([{ subject: 'A' }, {}], test_, 86_400))).toBe('options.variants.1')
    expect(fieldOf(() => parseAbTest(variants, undefined, 86_400))).toBe('options.test')
    expect(fieldOf(() => parseAbTest(variants, { ...test_, share: 1 }, 86_400))).toBe('options.test.share')
    expect(fieldOf(() => parseAbTest(variants, { ...test_, metric: 'replies' }, 86_400))).toBe('options.test.metric')
    expect(fieldOf(() => parseAbTest(variants, { ...test_, decideAfter: 'soon' }, 86_400))).toBe(
      'options.test.decideAfter',
    )
    expect(fieldOf(() => parseAbTest(variants, { ...test_, decideAfter: '2d' }, 86_400))).toBe(
      'options.test.decideAfter',
    )
    expect(fieldOf(() => parseAbTest(variants, { ...test_, minSample: 0 }, 86_400))).toBe('options.test.minSample')
    expect(fieldOf(() => parseAbTest(variants, { ...test_, winner: 0 }, 86_400))).toBe('options.test.winner')
  })
})
