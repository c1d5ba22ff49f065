// Signed keep and withdraw links for the two-yearly consent reminder, made with the unsubscribe tokens'
// encryption under a key of their own: a consent link is never a valid unsubscribe token, nor the reverse.
import { createHmac } from 'node:crypto'
import { MailstreamError } from '../errors.js'
import {
  createUnsubscribeToken,
  type UnsubscribeSecret,
  unsubscribeUrl,
  verifyUnsubscribeToken,
} from '../templates/unsubscribe.js'

/** What a link in the reminder asks for. */
export type ConsentAction = 'keep' | 'withdraw'

export type ConsentActionTokenResult =
  | { ok: true; email: string; action: ConsentAction; expiresAt?: number }
  | { ok: false; reason: 'malformed' | 'signature' | 'expired' }

const ACTIONS: readonly string[] = ['keep', 'withdraw']

// One derived secret per app secret: HMAC is cheap, but a reminder run signs two links per recipient.
const derived = new Map<string, string>()

/** The secret (or list) under which consent links are made: each secret through HMAC-SHA256 with a label of its own. */
function consentSecret(secret: UnsubscribeSecret): string[] {
  const list = typeof secret === 'string' ? [secret] : secret
  if (!Array.isArray(list) || list.length === 0 || list.some((item) => typeof item !== 'string' || item.length < 16)) {
    throw new MailstreamError('E_CONFIG', 'links.secret: must be a string of at least 16 characters (or a list)', {
      field: 'links.secret',
    })
  }
  return list.map((item: string) => {
    let key = derived.get(item)
    if (key === undefined) {
      key = createHmac('sha256', item).update('mailstream korea consent action v1').digest('base64url')
      if (derived.size >= 64) derived.clear()
      derived.set(item, key)
    }
    return key
  })
}

/**
 * An opaque, URL-safe token saying "this address keeps (or withdraws) its advertising consent",
 * encrypted and authenticated as unsubscribe tokens are (AES-256-GCM), with a key derived from
 * `secret` for this purpose only. Stateless. `expiresAt`: default never.
 */
export function createConsentActionToken(
  input: { email: string; action: ConsentAction; expiresAt?: Date | number },
  secret: UnsubscribeSecret,
): string {
  if (!ACTIONS.includes(input?.action)) {
    throw new MailstreamError('E_VALIDATION', "action: must be 'keep' or 'withdraw'", { field: 'action' })
  }
  const [key] = consentSecret(secret)
  return createUnsubscribeToken(
    { email: input.email, list: input.action, ...(input.expiresAt !== undefined && { expiresAt: input.expiresAt }) },
    key as string,
  )
}

/**
 * Checks a token from a keep or withdraw link. Never throws for a bad token: `{ ok: false, reason }`.
 * An unsubscribe token (or any other) is `signature`. A bad secret is `E_CONFIG`.
 */
export function verifyConsentActionToken(
  token: unknown,
  secret: UnsubscribeSecret,
  options: { now?: number } = {},
): ConsentActionTokenResult {
  const result = verifyUnsubscribeToken(token, consentSecret(secret), { acceptV1: false, ...options })
  if (!result.ok) return result
  if (!ACTIONS.includes(result.list)) return { ok: false, reason: 'malformed' }
  return {
    ok: true,
    email: result.email,
    action: result.list as ConsentAction,
    ...(result.expiresAt !== undefined && { expiresAt: result.expiresAt }),
  }
}

/** The page a consent link opens, with `?token=` added. */
export function consentActionUrl(base: string, token: string): string {
  return unsubscribeUrl(base, token)
}
