import { randomInt } from 'node:crypto'
import { expect, test } from 'vitest'
import { decodeTagValue, encodeTagValue } from '../src/transports/ses.js'

const ID_ALPHABET = 'ABCXYZabcxyz0189_.:-'
const SES_TAG_VALUE = /^[A-Za-z0-9_-]{1,256}$/

test('tag values: job and batch ids encode to the SES alphabet and decode back exactly', () => {
  const ids = ['_', '__', '.', ':', '_d', '_c', 'job:1.a_b', 'x'.repeat(128), ':'.repeat(128), '_'.repeat(128)]
  for (let i = 0; i < 2000; i++) {
    const length = randomInt(1, 129)
    ids.push(Array.from({ length }, () => ID_ALPHABET[randomInt(ID_ALPHABET.length)]).join(''))
  }
  for (const id of ids) {
    const tag = encodeTagValue(id)
    expect(tag).toMatch(SES_TAG_VALUE)
    expect(decodeTagValue(tag)).toBe(id)
  }
  // Ids without `_`, `.` or `:` are left as they are.
  expect(encodeTagValue('lq3k9d-AbC09')).toBe('lq3k9d-AbC09')
  expect(encodeTagValue('issue:2026.05_b')).toBe('issue_c2026_d05__b')
  // Anything else is escaped as a code unit, and still round-trips.
  expect(decodeTagValue(encodeTagValue('a/b é'))).toBe('a/b é')
})
