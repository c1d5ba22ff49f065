import { createDecipheriv, createHmac, hkdfSync } from 'node:crypto'
import { describe, expect, test } from 'vitest'
import { createUnsubscribeToken, listUnsubscribeHeaders, verifyUnsubscribeToken } from '../../src/index.js'

const SECRET = 'test-secret-0123456789abcdef'
const NEXT = 'next-secret-0123456789abcdef'
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** A token as releases before the encrypted format made them: readable payload, HMAC-SHA256 signature. */
function v1Token(fields: [number, string, string, number], secret = SECRET): string {
  const payload = Buffer.from(JSON.stringify(fields)).toString('base64url')
  const signature = createHmac('sha256', secret).update(`mailstream-unsubscribe.${payload}`).digest().subarray(0, 16)
  return `${payload}.${signature.toString('base64url')}`
}

/**
 * Every token that differs from `token` in its last character, by the reason it is refused:
 * `sameBytes` counts the spellings that decode to the very bytes of `token` (of a v1 token's signature).
 */
function lastCharacterVariants(token: string, verify: (token: string) => { ok: boolean; reason?: string }) {
  const lastPart = (text: string) => Buffer.from(text.split('.').at(-1) as string, 'base64url')
  const bytes = lastPart(token)
  const reasons: Record<string, number> = {}
  for (const char of ALPHABET) {
    if (char === token.at(-1)) continue
    const variant = token.slice(0, -1) + char
    const result = verify(variant)
    const key = `${lastPart(variant).equals(bytes) ? 'sameBytes' : 'otherBytes'}:${result.ok ? 'accepted' : result.reason}`
    reasons[key] = (reasons[key] ?? 0) + 1
  }
  return reasons
}

describe('unsubscribe tokens', () => {
  test('a token verifies to its address and list, and says nothing else', () => {
    const token = createUnsubscribeToken({ email: ' Reader@Example.com ', list: 'weekly' }, SECRET)
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(verifyUnsubscribeToken(token, SECRET)).toEqual({ ok: true, email: 'reader@example.com', list: 'weekly' })
  })

  test('the token reveals neither the address nor the list to whoever reads the URL', () => {
    const email = 'private.person@example.com'
    const token = createUnsubscribeToken({ email, list: 'weekly' }, SECRET)
    const bytes = Buffer.from(token, 'base64url')
    expect(bytes[0]).toBe(2) // the format version, readable so that formats can be told apart
    for (const secret of [email, 'private.person', 'example.com', 'weekly', 'Weekly', '"weekly"']) {
      expect({ secret, found: bytes.includes(Buffer.from(secret)) }).toEqual({ secret, found: false })
      expect(token.toLowerCase()).not.toContain(secret.toLowerCase())
    }
    // A fresh IV each time: two links to one address share nothing a reader could match.
    const again = createUnsubscribeToken({ email, list: 'weekly' }, SECRET)
    expect(again).not.toBe(token)
    expect(verifyUnsubscribeToken(again, SECRET)).toEqual({ ok: true, email, list: 'weekly' })
  })

  test('tokens stay short: a 60-character address fits in 134 characters', () => {
    const email = `${'a'.repeat(48)}@example.com`
    expect(email).toHaveLength(60)
    const token = createUnsubscribeToken({ email, list: 'weekly', expiresAt: Date.now() + 86_400_000 }, SECRET)
    // 1 version + 12 IV + 4 expiry + 60 + 1 + 6 + 16 tag = 100 bytes.
    expect(token).toHaveLength(134)
  })

  test('only the canonical spelling verifies: every other last character is refused', () => {
    // 18 + 6 bytes of text give 58 bytes: the last character carries 4 unused bits, so 15 other
    // spellings decode to the same bytes.
    const token = createUnsubscribeToken({ email: 'reader@example.com', list: 'weekly' }, SECRET)
    expect(Buffer.from(token, 'base64url')).toHaveLength(58)
    // 15 spellings of the same bytes, 45 that are not canonical for other bytes, 3 other tokens.
    expect(lastCharacterVariants(token, (t) => verifyUnsubscribeToken(t, SECRET))).toEqual({
      'sameBytes:malformed': 15,
      'otherBytes:malformed': 45,
      'otherBytes:signature': 3,
    })
    // Version 1 tokens (its signature is 16 bytes: 4 unused bits as well).
    const old = v1Token([1, 'reader@example.com', 'weekly', 0])
    expect(verifyUnsubscribeToken(old, SECRET)).toMatchObject({ ok: true })
    expect(lastCharacterVariants(old, (t) => verifyUnsubscribeToken(t, SECRET))).toEqual({
      'sameBytes:malformed': 15,
      'otherBytes:malformed': 45,
      'otherBytes:signature': 3,
    })
    // Padding, whitespace and characters outside base64url are other spellings too.
    for (const bad of [`${token}=`, `${token} `, ` ${token}`, `${token}\n`, token.replace(/^(.{10})/, '$1+')]) {
      expect(verifyUnsubscribeToken(bad, SECRET)).toEqual({ ok: false, reason: 'malformed' })
    }
  })

  test('a tampered, truncated or foreign token is rejected', () => {
    const token = createUnsubscribeToken({ email: 'reader@example.com', list: 'weekly' }, SECRET)
    const bytes = Buffer.from(token, 'base64url')
    for (let index = 1; index < bytes.length; index++) {
      const altered = Buffer.from(bytes)
      altered[index] = (altered[index] as number) ^ 0x01
      expect({ index, result: verifyUnsubscribeToken(altered.toString('base64url'), SECRET) }).toEqual({
        index,
        result: { ok: false, reason: 'signature' },
      })
    }
    const otherVersion = Buffer.from(bytes)
    otherVersion[0] = 3
    expect(verifyUnsubscribeToken(otherVersion.toString('base64url'), SECRET)).toEqual({
      ok: false,
      reason: 'malformed',
    })
    expect(verifyUnsubscribeToken(bytes.subarray(0, -1).toString('base64url'), SECRET)).toEqual({
      ok: false,
      reason: 'signature',
    })
    expect(verifyUnsubscribeToken(bytes.subarray(0, 30).toString('base64url'), SECRET)).toEqual({
      ok: false,
      reason: 'malformed',
    })
    expect(verifyUnsubscribeToken(token, 'another-secret-0123456789')).toEqual({ ok: false, reason: 'signature' })
    for (const bad of ['', 'abc', `${token}.`, `${token}!`, 42, null, undefined, 'A'.repeat(3000)]) {
      expect(verifyUnsubscribeToken(bad, SECRET)).toEqual({ ok: false, reason: 'malformed' })
    }
  })

  test('version 1 tokens from mail already sent still verify, unless acceptV1 is false', () => {
    const now = Date.now()
    const old = v1Token([1, 'reader@example.com', 'weekly', 0])
    expect(verifyUnsubscribeToken(old, SECRET)).toEqual({ ok: true, email: 'reader@example.com', list: 'weekly' })
    expect(verifyUnsubscribeToken(old, [NEXT, SECRET])).toMatchObject({ ok: true })
    expect(verifyUnsubscribeToken(old, SECRET, { acceptV1: false })).toEqual({ ok: false, reason: 'malformed' })
    const [payload, signature] = old.split('.') as [string, string]
    const forged = Buffer.from(JSON.stringify([1, 'victim@example.com', 'weekly', 0])).toString('base64url')
    expect(verifyUnsubscribeToken(`${forged}.${signature}`, SECRET)).toEqual({ ok: false, reason: 'signature' })
    expect(verifyUnsubscribeToken(`${payload}.${signature}.x`, SECRET)).toEqual({ ok: false, reason: 'malformed' })
    const expiring = v1Token([1, 'reader@example.com', 'weekly', Math.ceil((now + 60_000) / 1000)])
    expect(verifyUnsubscribeToken(expiring, SECRET, { now })).toMatchObject({ ok: true })
    expect(verifyUnsubscribeToken(expiring, SECRET, { now: now + 61_000 })).toEqual({ ok: false, reason: 'expired' })
  })

  test('expiry', () => {
    const now = Date.now()
    const token = createUnsubscribeToken({ email: 'a@example.com', expiresAt: now + 60_000 }, SECRET)
    expect(verifyUnsubscribeToken(token, SECRET, { now })).toEqual({
      ok: true,
      email: 'a@example.com',
      list: 'default',
      expiresAt: Math.ceil((now + 60_000) / 1000) * 1000,
    })
    expect(verifyUnsubscribeToken(token, SECRET, { now: now + 61_000 })).toEqual({ ok: false, reason: 'expired' })
    const dated = createUnsubscribeToken({ email: 'a@example.com', expiresAt: new Date(now - 1000) }, SECRET)
    expect(verifyUnsubscribeToken(dated, SECRET, { now })).toEqual({ ok: false, reason: 'expired' })
    const never = createUnsubscribeToken({ email: 'a@example.com' }, SECRET)
    expect(verifyUnsubscribeToken(never, SECRET, { now: now + 100 * 365 * 86_400_000 })).toMatchObject({ ok: true })
    for (const expiresAt of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '2030-01-01' as never]) {
      expect(() => createUnsubscribeToken({ email: 'a@example.com', expiresAt }, SECRET)).toThrow(
        expect.objectContaining({ code: 'E_VALIDATION', field: 'expiresAt' }),
      )
    }
  })

  test('secret rotation: the first secret makes tokens, every one verifies', () => {
    const old = createUnsubscribeToken({ email: 'a@example.com' }, SECRET)
    expect(verifyUnsubscribeToken(old, [NEXT, SECRET])).toMatchObject({ ok: true, email: 'a@example.com' })
    const rotated = createUnsubscribeToken({ email: 'a@example.com' }, [NEXT, SECRET])
    expect(verifyUnsubscribeToken(rotated, NEXT)).toMatchObject({ ok: true })
    expect(verifyUnsubscribeToken(rotated, ['third-secret-0123456789abc', NEXT])).toMatchObject({ ok: true })
    expect(verifyUnsubscribeToken(rotated, SECRET)).toEqual({ ok: false, reason: 'signature' })
    // Secret retired: its tokens no longer verify.
    expect(verifyUnsubscribeToken(old, NEXT)).toEqual({ ok: false, reason: 'signature' })
    expect(() => verifyUnsubscribeToken(old, 'short')).toThrow(expect.objectContaining({ code: 'E_CONFIG' }))
    expect(() => createUnsubscribeToken({ email: 'a@example.com' }, [])).toThrow(
      expect.objectContaining({ code: 'E_CONFIG' }),
    )
  })

  test('bad input is E_VALIDATION', () => {
    for (const [input, field] of [
      [{ email: '' }, 'email'],
      [{ email: 'a\u0000b@example.com' }, 'email'],
      [{ email: 'a@example.com', list: '' }, 'list'],
      [{ email: `${'a'.repeat(1100)}@example.com` }, 'email'],
    ] as const) {
      expect(() => createUnsubscribeToken(input, SECRET)).toThrow(
        expect.objectContaining({ code: 'E_VALIDATION', field }),
      )
    }
    // Any list name round-trips, separators and all.
    const token = createUnsubscribeToken({ email: 'a@example.com', list: '뉴스\u0000레터.x' }, SECRET)
    expect(verifyUnsubscribeToken(token, SECRET)).toEqual({
      ok: true,
      email: 'a@example.com',
      list: '뉴스\u0000레터.x',
    })
  })

  test('every size of token is AES-256-GCM as OpenSSL reads it: the key from HKDF, the version authenticated', () => {
    const key = Buffer.from(hkdfSync('sha256', SECRET, 'mailstream-unsubscribe', 'token v2 aes-256-gcm', 32))
    const open = (token: string) => {
      const bytes = Buffer.from(token, 'base64url')
      const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(1, 13), { authTagLength: 16 })
      decipher.setAAD(bytes.subarray(0, 1))
      decipher.setAuthTag(bytes.subarray(bytes.length - 16))
      return Buffer.concat([decipher.update(bytes.subarray(13, bytes.length - 16)), decipher.final()])
    }
    // Plaintexts of every length from 13 bytes to the most there is (1028), ASCII and not.
    const addresses: string[] = []
    for (let local = 1; local <= 1010; local++) addresses.push(`${'a'.repeat(local)}@ex.kr`)
    for (let local = 1; local <= 100; local++) addresses.push(`${'한'.repeat(local)}@예시.kr`)
    // The longest: 1017 + 1 + 'weekly' = 1024 bytes of text.
    addresses.push(`${'b'.repeat(1011)}@ex.kr`)
    for (const [i, email] of addresses.entries()) {
      const list = i % 3 === 0 ? 'weekly' : 'default'
      const expiresAt = i % 2 === 0 ? undefined : 1_900_000_000_000 + i * 1000
      const token = createUnsubscribeToken({ email, list, ...(expiresAt !== undefined && { expiresAt }) }, SECRET)
      const expected = Buffer.concat([Buffer.alloc(4), Buffer.from(`${email}\u0000${list}`)])
      expected.writeUInt32BE(expiresAt === undefined ? 0 : expiresAt / 1000)
      expect({ email, plaintext: open(token).equals(expected) }).toEqual({ email, plaintext: true })
      expect(verifyUnsubscribeToken(token, SECRET, { now: 0 })).toEqual({
        ok: true,
        email,
        list,
        ...(expiresAt !== undefined && { expiresAt }),
      })
    }
    // A tag changed in any bit is refused by OpenSSL and by the verifier.
    const token = createUnsubscribeToken({ email: 'reader@example.com' }, SECRET)
    const bytes = Buffer.from(token, 'base64url')
    for (let bit = 0; bit < 128; bit += 7) {
      const forged = Buffer.from(bytes)
      const at = forged.length - 16 + (bit >> 3)
      forged[at] = (forged[at] as number) ^ (1 << (bit & 7))
      expect(() => open(forged.toString('base64url'))).toThrow()
      expect(verifyUnsubscribeToken(forged.toString('base64url'), SECRET)).toEqual({ ok: false, reason: 'signature' })
    }
  })

  test('every token has an IV of its own, across many batches of IVs', () => {
    const ivs = new Set<string>()
    for (let i = 0; i < 5000; i++) {
      const token = createUnsubscribeToken({ email: 'same@example.com' }, i % 2 === 0 ? SECRET : [NEXT, SECRET])
      ivs.add(Buffer.from(token, 'base64url').subarray(1, 13).toString('hex'))
    }
    expect(ivs.size).toBe(5000)
  })

  test('RFC 8058 headers: one-click only for an https link', () => {
    expect(listUnsubscribeHeaders('https://a.example/u?token=t', 'mailto:u@a.example?subject=unsubscribe')).toEqual({
      'List-Unsubscribe': '<https://a.example/u?token=t>, <mailto:u@a.example?subject=unsubscribe>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    })
    expect(listUnsubscribeHeaders('http://localhost/u')).toEqual({ 'List-Unsubscribe': '<http://localhost/u>' })
  })
})
