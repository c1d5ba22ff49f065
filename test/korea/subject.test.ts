import { describe, expect, it } from 'vitest'
import {
  ADVERTISING_MARK,
  advertisingSubject,
  findAdvertisingMark,
  ordinarySubjectProblem,
} from '../../src/korea/subject.js'

const LOOK_ALIKES = [
  '(광/고)',
  '(광 고)',
  '[광고]',
  '(광.고)',
  '(광·고)',
  '(광ㆍ고)',
  '(광・고)',
  '{광고}',
  '<광고>',
  '（광고）',
  '(광\u200B고)',
  '(광\u200D고)',
  '(\uFEFF광고)',
  '( 광고 )',
  '(광\\고)',
  '【광고】',
  '〈광고〉',
  '(광　고)',
  '［광고］',
  '광고)',
]

describe('the (광고) subject mark', () => {
  it('is written with ASCII parentheses and nothing between 광 and 고', () => {
    expect(ADVERTISING_MARK).toBe('(광고)')
    expect(findAdvertisingMark('(광고) 봄 세일')).toEqual({ text: '(광고)', exact: true })
  })

  it('keeps an advertising subject that already starts with (광고)', () => {
    expect(advertisingSubject('(광고) 봄 세일 30%')).toEqual({ ok: true, subject: '(광고) 봄 세일 30%' })
    expect(advertisingSubject('(광고)봄 세일')).toEqual({ ok: true, subject: '(광고)봄 세일' })
  })

  it('puts (광고) in front of an advertising subject without a mark', () => {
    expect(advertisingSubject('봄 세일 30%')).toEqual({ ok: true, subject: '(광고) 봄 세일 30%' })
    // 광고 as a word, not a mark, is left alone.
    expect(advertisingSubject('광고 문의 안내')).toEqual({ ok: true, subject: '(광고) 광고 문의 안내' })
  })

  it.each(LOOK_ALIKES)('refuses the look-alike %j at the start of an advertising subject', (mark) => {
    const result = advertisingSubject(`${mark} 봄 세일`)
    expect(result.ok).toBe(false)
    if (!result.ok) expect(result.reason).toMatch(/look-alike/)
  })

  it.each(LOOK_ALIKES.filter((mark) => mark !== '광고)'))('refuses the look-alike %j after an exact mark', (mark) => {
    expect(advertisingSubject(`(광고) ${mark} 봄 세일`).ok).toBe(false)
  })

  it('refuses a mark that is not at the very start', () => {
    expect(advertisingSubject(' (광고) 봄 세일').ok).toBe(false)
    expect(advertisingSubject('[브랜드] (광고) 봄 세일').ok).toBe(false)
    expect(advertisingSubject('\u200B(광고) 봄 세일').ok).toBe(false)
  })

  it('refuses the mark twice', () => {
    const result = advertisingSubject('(광고) (광고) 봄 세일')
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/twice/) })
  })

  it.each(['(광고) 주문이 접수되었습니다', ...LOOK_ALIKES])('refuses a non-advertising subject carrying %j', (mark) => {
    expect(ordinarySubjectProblem(`${mark} 주문이 접수되었습니다`)).toMatch(/not advertising/)
  })

  it('lets ordinary subjects through, 광고 as a word included', () => {
    for (const subject of [
      '주문이 접수되었습니다',
      '광고 문의에 답변드립니다',
      '(광고주 안내) 정산',
      'Your order',
      '광 고',
    ]) {
      expect(ordinarySubjectProblem(subject)).toBeUndefined()
    }
  })
})
