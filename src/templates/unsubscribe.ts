import { createHmac, timingSafeEqual } from 'node:crypto'
import { MailstreamError } from '../errors.js'

/** What an unsubscribe token says: who leaves which list, and until when the link works. */
export interface UnsubscribeTokenInput {
  email: string
  /** The list the address leaves. Default `default`. */
  list?: string
  /** After this the token is refused (`reason: 'expired'`). Default: never. */
  expiresAt?: Date | number
}

export type UnsubscribeTokenResult =
  | { ok: true; email: string; list: string; expiresAt?: number }
  | { ok: false; reason: 'malformed' | 'signature' | 'expired' }

/** One secret, or several for rotation: the first signs, every one verifies. */
export type UnsubscribeSecret = string | readonly string[]

const VERSION = 1
const SIGNATURE_BYTES = 16
const TOKEN_RE = /^([A-Za-z0-9_-]{4,2048})\.([A-Za-z0-9_-]{22})$/

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

function sign(payload: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(`mailstream-unsubscribe.${payload}`).digest().subarray(0, SIGNATURE_BYTES)
}

/**
 * A signed token for an unsubscribe link: `<payload>.<signature>`, both base64url. The payload
 * (address, list, expiry) is readable, not secret; the HMAC-SHA256 signature makes it tamper-proof.
 */
export function createUnsubscribeToken(input: UnsubscribeTokenInput, secret: UnsubscribeSecret): string {
  const [signing] = secretsOf(secret)
  if (typeof input?.email !== 'string' || input.email.trim() === '') {
    throw new MailstreamError('E_VALIDATION', 'email: must be an email address', { field: 'email' })
  }
  const list = input.list ?? 'default'
  if (typeof list !== 'string' || list === '') {
    throw new MailstreamError('E_VALIDATION', 'list: must be a non-empty string', { field: 'list' })
  }
  let expiresAt = 0
  if (input.expiresAt !== undefined) {
    expiresAt = input.expiresAt instanceof Date ? input.expiresAt.getTime() : input.expiresAt
    if (!Number.isFinite(expiresAt)) {
      throw new MailstreamError('E_VALIDATION', 'expiresAt: must be a Date or epoch ms', { field: 'expiresAt' })
    }
  }
  const payload = Buffer.from(
    JSON.stringify([VERSION, input.email.trim().toLowerCase(), list, Math.ceil(expiresAt / 1000)]),
  ).toString('base64url')
  return `${payload}.${sign(payload, signing as string).toString('base64url')}`
}

/**
 * Checks a token made by `createUnsubscribeToken`. Never throws for a bad token: it resolves
 * `{ ok: false, reason }` (`malformed`, `signature` for a tampered or foreign token, `expired`).
 * A bad secret is a configuration error and throws `E_CONFIG`.
 */
export function verifyUnsubscribeToken(
  token: unknown,
  secret: UnsubscribeSecret,
  options: { now?: number } = {},
): UnsubscribeTokenResult {
  const secrets = secretsOf(secret)
  const match = typeof token === 'string' ? TOKEN_RE.exec(token) : null
  if (!match) return { ok: false, reason: 'malformed' }
  const [, payload, signature] = match as unknown as [string, string, string]
  const given = Buffer.from(signature, 'base64url')
  if (given.length !== SIGNATURE_BYTES) return { ok: false, reason: 'malformed' }
  if (!secrets.some((candidate) => timingSafeEqual(sign(payload, candidate), given))) {
    return { ok: false, reason: 'signature' }
  }
  let fields: unknown
  try {
    fields = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  } catch {
    return { ok: false, reason: 'malformed' }
  }
  if (!Array.isArray(fields) || fields[0] !== VERSION || fields.length !== 4) return { ok: false, reason: 'malformed' }
  const [, email, list, expiresSeconds] = fields as [number, unknown, unknown, unknown]
  if (typeof email !== 'string' || typeof list !== 'string' || typeof expiresSeconds !== 'number') {
    return { ok: false, reason: 'malformed' }
  }
  if (expiresSeconds > 0) {
    const expiresAt = expiresSeconds * 1000
    if ((options.now ?? Date.now()) >= expiresAt) return { ok: false, reason: 'expired' }
    return { ok: true, email, list, expiresAt }
  }
  return { ok: true, email, list }
}

/** `url` with `token` added as a query parameter. */
export function unsubscribeUrl(base: string, token: string): string {
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
