import { describe, expect, test } from 'vitest'
import { createUnsubscribeToken, listUnsubscribeHeaders, verifyUnsubscribeToken } from '../../src/index.js'

const SECRET = 'test-secret-0123456789abcdef'

describe('unsubscribe tokens', () => {
  test('a token verifies to its address and list, and says nothing else', () => {
    const token = createUnsubscribeToken({ email: ' Reader@Example.com ', list: 'weekly' }, SECRET)
    expect(token).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$/)
    expect(verifyUnsubscribeToken(token, SECRET)).toEqual({ ok: true, email: 'reader@example.com', list: 'weekly' })
  })

  test('a tampered token is rejected', () => {
    const token = createUnsubscribeToken({ email: 'reader@example.com', list: 'weekly' }, SECRET)
    const [payload, signature] = token.split('.') as [string, string]
    // Another address in the payload, keeping the signature.
    const forged = Buffer.from(JSON.stringify([1, 'victim@example.com', 'weekly', 0])).toString('base64url')
    expect(verifyUnsubscribeToken(`${forged}.${signature}`, SECRET)).toEqual({ ok: false, reason: 'signature' })
    // One character of the signature changed.
    const flipped = signature.slice(0, -2) + (signature.at(-2) === 'A' ? 'B' : 'A') + signature.at(-1)
    expect(verifyUnsubscribeToken(`${payload}.${flipped}`, SECRET)).toEqual({ ok: false, reason: 'signature' })
    // Signed with another secret.
    expect(verifyUnsubscribeToken(token, 'another-secret-0123456789')).toEqual({ ok: false, reason: 'signature' })
    for (const bad of ['', 'abc', `${payload}.`, `${payload}.${signature}.x`, 42, null, `${payload}!.${signature}`]) {
      expect(verifyUnsubscribeToken(bad, SECRET)).toEqual({ ok: false, reason: 'malformed' })
    }
  })

  test('expiry, and secret rotation', () => {
    const now = Date.now()
    const token = createUnsubscribeToken({ email: 'a@example.com', expiresAt: now + 60_000 }, SECRET)
    expect(verifyUnsubscribeToken(token, SECRET, { now })).toMatchObject({ ok: true, list: 'default' })
    expect(verifyUnsubscribeToken(token, SECRET, { now: now + 61_000 })).toEqual({ ok: false, reason: 'expired' })
    const next = 'next-secret-0123456789abcdef'
    expect(verifyUnsubscribeToken(token, [next, SECRET], { now })).toMatchObject({ ok: true })
    expect(
      verifyUnsubscribeToken(createUnsubscribeToken({ email: 'a@example.com' }, [next, SECRET]), next),
    ).toMatchObject({
      ok: true,
    })
    expect(() => verifyUnsubscribeToken(token, 'short')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }))
  })

  test('RFC 8058 headers: one-click only for an https link', () => {
    expect(listUnsubscribeHeaders('https://a.example/u?token=t', 'mailto:u@a.example?subject=unsubscribe')).toEqual({
      'List-Unsubscribe': '<https://a.example/u?token=t>, <mailto:u@a.example?subject=unsubscribe>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    })
    expect(listUnsubscribeHeaders('http://localhost/u')).toEqual({ 'List-Unsubscribe': '<http://localhost/u>' })
  })
})
