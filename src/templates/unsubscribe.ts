import { createDecipheriv, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'
import { MailstreamError } from '../errors.js'
import { createGcmSealer, type GcmSealer } from './gcm.js'

/** What an unsubscribe token says: who leaves which list, and until when the link works. */
export interface UnsubscribeTokenInput {
  email: string
  /** The list the address leaves. Default `default`. */
  list?: string
  /** After this the token is refused (`reason: 'expired'`). Kept to the second, at most 2106-02-07. Default: never. */
  expiresAt?: Date | number
}

export type UnsubscribeTokenResult =
  | { ok: true; email: string; list: string; expiresAt?: number }
  | { ok: false; reason: 'malformed' | 'signature' | 'expired' }

/** One secret, or several for rotation: the first makes new tokens, every one verifies. */
export type UnsubscribeSecret = string | readonly string[]

export interface VerifyUnsubscribeTokenOptions {
  /** The current time, epoch ms. Default `Date.now()`. */
  now?: number
  /**
   * Accept version 1 tokens (`<payload>.<signature>` with a readable address, made by earlier
   * releases), so links in mail already sent keep working. Default true.
   */
  acceptV1?: boolean
}

// Version 2: base64url(0x02 | iv (12) | AES-256-GCM(plaintext) | tag (16)), plaintext =
// expiry in seconds (uint32, 0 = never) | address | 0x00 | list. The version byte is authenticated too.
const VERSION = 2
const IV_BYTES = 12
const TAG_BYTES = 16
const EXPIRY_BYTES = 4
const MIN_BYTES = 1 + IV_BYTES + EXPIRY_BYTES + 2 + TAG_BYTES
const MAX_TOKEN_CHARS = 2048
const MAX_TEXT_BYTES = 1024
const MAX_EXPIRY_SECONDS = 0xffff_ffff
const BASE64URL_RE = /^[A-Za-z0-9_-]+$/

const V1_VERSION = 1
const V1_SIGNATURE_BYTES = 16
const V1_TOKEN_RE = /^([A-Za-z0-9_-]{4,2048})\.([A-Za-z0-9_-]{22})$/

function secretsOf(secret: UnsubscribeSecret): readonly string[] {
  const list = typeof secret === 'string' ? [secret] : secret
  if (!Array.isArray(list) || list.length === 0 || list.some((item) => typeof item !== 'string' || item.length < 16)) {
    throw new MailstreamError(
      'E_CONFIG',
      'unsubscribe secret: must be a string of at least 16 characters (or a list)',
      {
        field: 'secret',
      },
    )
  }
  return list
}

// HKDF costs several times one encryption: keep the few keys a process uses.
const derivedKeys = new Map<string, Buffer>()

// Scratch space for making a token (synchronous, so one each is enough): the plaintext, at most
// MAX_TEXT_BYTES after the expiry (3 bytes per UTF-16 unit written before the size is checked),
// and the token's bytes.
const plainScratch = Buffer.alloc(EXPIRY_BYTES + MAX_TEXT_BYTES * 3)
// The token's ciphertext is padded to whole blocks while its tag is computed.
const tokenScratch = Buffer.alloc(1 + IV_BYTES + Math.ceil((EXPIRY_BYTES + MAX_TEXT_BYTES) / 16) * 16 + TAG_BYTES)
const VERSION_BYTE = Buffer.from([VERSION])

// Encryption for new tokens, per signing secret (see gcm.ts: the same AES-256-GCM, made in batches).
const sealers = new Map<string, GcmSealer>()

function sealerOf(secret: string): GcmSealer {
  let sealer = sealers.get(secret)
  if (!sealer) {
    sealer = createGcmSealer(keyOf(secret), VERSION_BYTE)
    if (sealers.size >= 16) sealers.clear()
    sealers.set(secret, sealer)
  }
  return sealer
}

function keyOf(secret: string): Buffer {
  let key = derivedKeys.get(secret)
  if (!key) {
    key = Buffer.from(hkdfSync('sha256', secret, 'mailstream-unsubscribe', 'token v2 aes-256-gcm', 32))
    if (derivedKeys.size >= 64) derivedKeys.clear()
    derivedKeys.set(secret, key)
  }
  return key
}

/** The bytes of a base64url text, or undefined unless the text is their one canonical spelling. */
function canonicalBytes(text: string): Buffer | undefined {
  if (!BASE64URL_RE.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64url')
  // Node ignores the unused low bits of the last character: without this, one token has up to 16 spellings.
  return bytes.toString('base64url') === text ? bytes : undefined
}

/**
 * An opaque token for an unsubscribe link, base64url, URL-safe. The address, list and expiry are
 * encrypted (AES-256-GCM with a key derived from the secret by HKDF-SHA256, random IV), so whoever
 * reads the URL (a proxy log, a Referer) learns nothing about the subscriber; without the secret it
 * can be neither read nor changed. Stateless: nothing is stored. Every call gives a new token.
 */
export function createUnsubscribeToken(input: UnsubscribeTokenInput, secret: UnsubscribeSecret): string {
  const signing = typeof secret === 'string' && secret.length >= 16 ? secret : (secretsOf(secret)[0] as string)
  if (typeof input?.email !== 'string' || input.email.trim() === '' || input.email.includes('\u0000')) {
    throw new MailstreamError('E_VALIDATION', 'email: must be an email address', { field: 'email' })
  }
  const list = input.list ?? 'default'
  if (typeof list !== 'string' || list === '') {
    throw new MailstreamError('E_VALIDATION', 'list: must be a non-empty string', { field: 'list' })
  }
  let expiresSeconds = 0
  if (input.expiresAt !== undefined) {
    const expiresAt = input.expiresAt instanceof Date ? input.expiresAt.getTime() : input.expiresAt
    if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt) || expiresAt <= 0) {
      throw new MailstreamError('E_VALIDATION', `expiresAt: must be a Date or epoch ms after 1970, got ${expiresAt}`, {
        field: 'expiresAt',
      })
    }
    expiresSeconds = Math.min(Math.ceil(expiresAt / 1000), MAX_EXPIRY_SECONDS)
  }
  // The plaintext is written straight after the expiry; a UTF-16 unit is at least one byte in UTF-8.
  const text = `${input.email.trim().toLowerCase()}\u0000${list}`
  const written = text.length > MAX_TEXT_BYTES ? MAX_TEXT_BYTES + 1 : plainScratch.write(text, EXPIRY_BYTES, 'utf8')
  if (written > MAX_TEXT_BYTES) {
    throw new MailstreamError('E_VALIDATION', `email and list: at most ${MAX_TEXT_BYTES} bytes together`, {
      field: 'email',
    })
  }
  plainScratch.writeUInt32BE(expiresSeconds, 0)
  const plaintext = plainScratch.subarray(0, EXPIRY_BYTES + written)
  // version | iv | ciphertext | tag, laid out in one buffer and spelled once.
  tokenScratch[0] = VERSION
  const end = sealerOf(signing).seal(plaintext, tokenScratch, 1)
  return tokenScratch.toString('base64url', 0, end)
}

function decrypt(bytes: Buffer, secrets: readonly string[]): Buffer | undefined {
  const iv = bytes.subarray(1, 1 + IV_BYTES)
  const encrypted = bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES)
  const tag = bytes.subarray(bytes.length - TAG_BYTES)
  for (const candidate of secrets) {
    try {
      const decipher = createDecipheriv('aes-256-gcm', keyOf(candidate), iv, { authTagLength: TAG_BYTES })
      decipher.setAAD(bytes.subarray(0, 1))
      decipher.setAuthTag(tag)
      return Buffer.concat([decipher.update(encrypted), decipher.final()])
    } catch {
      // Not this secret's token (or tampered): try the next.
    }
  }
  return undefined
}

function result(email: string, list: string, expiresSeconds: number, now: number): UnsubscribeTokenResult {
  if (expiresSeconds <= 0) return { ok: true, email, list }
  const expiresAt = expiresSeconds * 1000
  if (now >= expiresAt) return { ok: false, reason: 'expired' }
  return { ok: true, email, list, expiresAt }
}

function signV1(payload: string, secret: string): Buffer {
  return createHmac('sha256', secret)
    .update(`mailstream-unsubscribe.${payload}`)
    .digest()
    .subarray(0, V1_SIGNATURE_BYTES)
}

/** A version 1 token: readable payload, HMAC signature. Verified only, never made any more. */
function verifyV1(token: string, secrets: readonly string[], now: number): UnsubscribeTokenResult {
  const match = V1_TOKEN_RE.exec(token)
  if (!match) return { ok: false, reason: 'malformed' }
  const [, payload, signature] = match as unknown as [string, string, string]
  const given = canonicalBytes(signature)
  const payloadBytes = canonicalBytes(payload)
  if (given?.length !== V1_SIGNATURE_BYTES || !payloadBytes) return { ok: false, reason: 'malformed' }
  if (!secrets.some((candidate) => timingSafeEqual(signV1(payload, candidate), given))) {
    return { ok: false, reason: 'signature' }
  }
  let fields: unknown
  try {
    fields = JSON.parse(payloadBytes.toString('utf8'))
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  if (!Array.isArray(fields) || fields[0] !== V1_VERSION || fields.length !== 4)
    return { ok: false, reason: 'malformed' }
  const [, email, list, expiresSeconds] = fields as [number, unknown, unknown, unknown]
  if (typeof email !== 'string' || typeof list !== 'string' || typeof expiresSeconds !== 'number') {
    return { ok: false, reason: 'malformed' }
  }
  return result(email, list, expiresSeconds, now)
}

/**
 * Checks a token made by `createUnsubscribeToken`. Never throws for a bad token: it resolves
 * `{ ok: false, reason }` (`malformed`, also for any spelling but the canonical one; `signature`
 * for a tampered or foreign token; `expired`). Version 1 tokens (readable, from older releases)
 * still verify unless `acceptV1: false`. A bad secret is a configuration error and throws `E_CONFIG`.
 */
export function verifyUnsubscribeToken(
  token: unknown,
  secret: UnsubscribeSecret,
  options: VerifyUnsubscribeTokenOptions = {},
): UnsubscribeTokenResult {
  const secrets = secretsOf(secret)
  const now = options.now ?? Date.now()
  if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS) return { ok: false, reason: 'malformed' }
  if (token.includes('.')) {
    return options.acceptV1 === false ? { ok: false, reason: 'malformed' } : verifyV1(token, secrets, now)
  }
  const bytes = canonicalBytes(token)
  if (!bytes || bytes.length < MIN_BYTES || bytes[0] !== VERSION) return { ok: false, reason: 'malformed' }
  const plaintext = decrypt(bytes, secrets)
  if (!plaintext) return { ok: false, reason: 'signature' }
  const separator = plaintext.indexOf(0, EXPIRY_BYTES)
  if (separator <= EXPIRY_BYTES || separator === plaintext.length - 1) return { ok: false, reason: 'malformed' }
  const email = plaintext.toString('utf8', EXPIRY_BYTES, separator)
  const list = plaintext.toString('utf8', separator + 1)
  return result(email, list, plaintext.readUInt32BE(0), now)
}

const urlPrefixes = new Map<string, string>()

/**
 * What a base64url token is appended to for `unsubscribeUrl(base, token)`, or '' when the page has a
 * query or a fragment of its own (then the token is set in its query).
 */
export function unsubscribeUrlPrefix(base: string): string {
  let prefix = urlPrefixes.get(base)
  if (prefix === undefined) {
    const url = new URL(base)
    // A page without a query takes `?token=` as is (a token is base64url: nothing to escape).
    prefix = url.search === '' && url.hash === '' ? `${url.toString()}?token=` : ''
    if (urlPrefixes.size >= 64) urlPrefixes.clear()
    urlPrefixes.set(base, prefix)
  }
  return prefix
}

/** `url` with `token` added as a query parameter. */
export function unsubscribeUrl(base: string, token: string): string {
  const prefix = unsubscribeUrlPrefix(base)
  if (prefix !== '' && /^[\w-]*$/.test(token)) return prefix + token
  const url = new URL(base)
  url.searchParams.set('token', token)
  return url.toString()
}

/**
 * `List-Unsubscribe` (RFC 2369) and, for an https link, `List-Unsubscribe-Post:
 * List-Unsubscribe=One-Click` (RFC 8058): mail clients then show an unsubscribe button that POSTs
 * `List-Unsubscribe=One-Click` to the link.
 */
export function listUnsubscribeHeaders(url: string, mailto?: string): Record<string, string> {
  const targets = [`<${url}>`]
  if (mailto) targets.push(`<${mailto}>`)
  const headers: Record<string, string> = { 'List-Unsubscribe': targets.join(', ') }
  if (url.startsWith('https://')) headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click'
  return headers
}
