import { describe, expect, test } from 'vitest'
import { displayWidth, pairs, table, truncate } from '../../src/cli/format.js'

describe('displayWidth', () => {
  test('Hangul, kana, CJK ideographs and fullwidth forms take two columns; ascii one', () => {
    expect(displayWidth('welcome')).toBe(7)
    expect(displayWidth('환영합니다')).toBe(10)
    expect(displayWidth('주문 #42 확인')).toBe(4 + 1 + 3 + 1 + 4)
    expect(displayWidth('ありがとう')).toBe(10)
    expect(displayWidth('注文確認')).toBe(8)
    expect(displayWidth('ＡＢＣ')).toBe(6)
    expect(displayWidth('')).toBe(0)
  })

  test('combining marks and joiners take none; Hangul written as Jamo counts per syllable', () => {
    expect(displayWidth('e\u0301')).toBe(1) // e + combining acute
    expect(displayWidth('한국'.normalize('NFD'))).toBe(4)
    expect(displayWidth('a\u200bb')).toBe(2)
  })

  test('emoji take two columns, a joined sequence too', () => {
    expect(displayWidth('📧')).toBe(2)
    expect(displayWidth('👩‍💻')).toBe(2)
    expect(displayWidth('✉️')).toBe(2)
    expect(displayWidth('©')).toBe(1)
  })
})

describe('truncate', () => {
  test('cuts to the given columns with an ellipsis, never splitting a wide character', () => {
    expect(truncate('short', 10)).toBe('short')
    expect(truncate('a longer subject line', 10)).toBe('a longer …')
    expect(displayWidth(truncate('가입을 환영합니다 주문 내역', 9))).toBeLessThanOrEqual(9)
    expect(truncate('가입을 환영합니다', 6)).toBe('가입…')
  })
})

describe('table', () => {
  test('columns line up in terminal columns when cells hold Korean', () => {
    const text = table(
      ['id', 'subject', 'to'],
      [
        ['j1', '가입을 환영합니다', 'kim@example.com'],
        ['j22', 'Welcome aboard', 'lee@example.com'],
        ['j333', '주문 확인 🎉', 'park@example.com'],
      ],
    )
    const lines = text.split('\n')
    expect(lines[0]).toMatch(/^id {4}subject {12}to$/)
    // Every row's last cell starts at the same terminal column, after the widest subject (17 columns).
    const lastCellStart = (line: string) => displayWidth(line.slice(0, line.lastIndexOf('  ') + 2))
    expect(lines.map(lastCellStart)).toEqual([25, 25, 25, 25, 25])
    // The rule under the header is as wide as the widest cell of each column.
    expect(lines[1]).toBe(`${'-'.repeat(4)}  ${'-'.repeat(17)}  ${'-'.repeat(16)}`)
  })

  test('empty cells show a dash, and control characters from Redis become spaces', () => {
    expect(table(['a', 'b'], [[undefined, 'x\u001b[31my\nz']])).toBe('a  b\n-  ---------\n-  x [31my z')
  })
})

test('pairs align values after keys', () => {
  expect(
    pairs([
      ['subject', '환영'],
      ['to', 'kim@example.com'],
    ]),
  ).toBe('subject  환영\nto       kim@example.com')
})
