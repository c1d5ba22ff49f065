import { expect, test } from 'vitest'
import {
  consentActionUrl,
  createConsentActionToken,
  createUnsubscribeToken,
  verifyConsentActionToken,
} from '../../src/index.js'

const SECRET = 'consent-secret-0123456789'

test('a keep or withdraw token verifies to its address and action, and only under its secret', () => {
  const keep = createConsentActionToken({ email: ' Reader@Example.com', action: 'keep' }, SECRET)
  expect(verifyConsentActionToken(keep, SECRET)).toEqual({ ok: true, email: 'reader@example.com', action: 'keep' })
  const withdraw = createConsentActionToken({ email: 'reader@example.com', action: 'withdraw' }, SECRET)
  expect(verifyConsentActionToken(withdraw, [`${SECRET}-new`, SECRET])).toMatchObject({ ok: true, action: 'withdraw' })
  expect(verifyConsentActionToken(withdraw, `${SECRET}-other`)).toEqual({ ok: false, reason: 'signature' })
  // An unsubscribe token of the same secret (even for the list 'withdraw') is not a consent link.
  const unsubscribe = createUnsubscribeToken({ email: 'reader@example.com', list: 'withdraw' }, SECRET)
  expect(verifyConsentActionToken(unsubscribe, SECRET)).toEqual({ ok: false, reason: 'signature' })
  expect(verifyConsentActionToken(`${keep.slice(0, -2)}AA`, SECRET)).toMatchObject({ ok: false })
  expect(verifyConsentActionToken(42, SECRET)).toEqual({ ok: false, reason: 'malformed' })
})

test('expiry, and the URL the token goes into', () => {
  const now = Date.parse('2026-01-01T00:00:00Z')
  const token = createConsentActionToken({ email: 'r@example.com', action: 'keep', expiresAt: now + 60_000 }, SECRET)
  expect(verifyConsentActionToken(token, SECRET, { now })).toMatchObject({ ok: true, expiresAt: now + 60_000 })
  expect(verifyConsentActionToken(token, SECRET, { now: now + 60_000 })).toEqual({ ok: false, reason: 'expired' })
  expect(consentActionUrl('https://vality.kr/consent', token)).toBe(`https://vality.kr/consent?token=${token}`)
  expect(consentActionUrl('https://vality.kr/consent?from=mail', token)).toBe(
    `https://vality.kr/consent?from=mail&token=${token}`,
  )
})

test('a bad action or secret is refused', () => {
  expect(() => createConsentActionToken({ email: 'r@example.com', action: 'stop' as never }, SECRET)).toThrow(
    expect.objectContaining({ code: 'E_VALIDATION', field: 'action' }),
  )
  expect(() => createConsentActionToken({ email: 'r@example.com', action: 'keep' }, 'short')).toThrow(
    expect.objectContaining({ code: 'E_CONFIG' }),
  )
})
