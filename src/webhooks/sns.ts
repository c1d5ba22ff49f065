import { createVerify, X509Certificate } from 'node:crypto'
import { describeError, MailstreamError } from '../errors.js'

/** The three kinds of message SNS posts to an HTTP(S) subscription. */
export type SnsMessageType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation'

/** An SNS message as posted to an HTTP(S) endpoint (the JSON body). */
export interface SnsMessage {
  Type: SnsMessageType
  MessageId: string
  TopicArn: string
  Message: string
  Timestamp: string
  Subject?: string
  Token?: string
  SubscribeURL?: string
  UnsubscribeURL?: string
  SignatureVersion?: string
  Signature?: string
  SigningCertURL?: string
}

/** Downloads a PEM certificate. Only ever called with a URL that passed `isSnsUrl`. */
export type FetchCertificate = (url: string) => Promise<string>

// The label after `sns.` must be a region name: `[a-z0-9-]+` alone would also admit S3 bucket
// hosts such as `sns.s3.amazonaws.com` or `sns.s3-us-west-2.amazonaws.com`, where anyone owning a
// bucket named `sns` could serve a certificate.
const SNS_HOST_RE = /^sns\.[a-z]{2}(-[a-z]+)+-\d{1,2}\.amazonaws\.com(\.cn)?$/
const MESSAGE_ID_RE = /^[A-Za-z0-9-]{1,100}$/
const TYPES: readonly SnsMessageType[] = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation']

/**
 * True for an https URL on an SNS host (`sns.<region>.amazonaws.com`, or `.com.cn`) with no
 * user info and no explicit port. Certificate and SubscribeURL links are checked with this
 * before anything is fetched, so a forged message cannot make the server request other hosts.
 */
export function isSnsUrl(value: unknown): value is string {
  if (typeof value !== 'string' || value.length > 2048) return false
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return false
  }
  return (
    url.protocol === 'https:' &&
    url.username === '' &&
    url.password === '' &&
    url.port === '' &&
    SNS_HOST_RE.test(url.hostname)
  )
}

/**
 * Checks the shape of a parsed body and returns it as an SNS message, or a reason it is not one.
 * The fields that are signed must be strings; the optional ones may be absent.
 */
export function toSnsMessage(body: unknown): SnsMessage | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body is not a JSON object'
  const message = body as Record<string, unknown>
  if (!TYPES.includes(message.Type as SnsMessageType)) return 'Type is not an SNS message type'
  for (const field of ['MessageId', 'TopicArn', 'Message', 'Timestamp']) {
    if (typeof message[field] !== 'string') return `${field} is missing`
  }
  if (!MESSAGE_ID_RE.test(message.MessageId as string)) return 'MessageId is malformed'
  if (message.Type !== 'Notification') {
    if (typeof message.Token !== 'string' || typeof message.SubscribeURL !== 'string') {
      return 'Token or SubscribeURL is missing'
    }
  }
  for (const field of ['Subject', 'SignatureVersion', 'Signature', 'SigningCertURL', 'UnsubscribeURL']) {
    if (message[field] !== undefined && typeof message[field] !== 'string') return `${field} is not a string`
  }
  return message as unknown as SnsMessage
}

/**
 * The string SNS signs, as AWS documents it: for a Notification the fields Message, MessageId,
 * Subject (when present), Timestamp, TopicArn and Type; for the two confirmations Message,
 * MessageId, SubscribeURL, Timestamp, Token, TopicArn and Type. Each is `Name\nvalue\n`.
 */
export function stringToSign(message: SnsMessage): string {
  const fields: (keyof SnsMessage)[] =
    message.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type']
  let out = ''
  for (const field of fields) {
    const value = message[field]
    if (value !== undefined) out += `${field}\n${value}\n`
  }
  return out
}

/** Default certificate download: global fetch, no redirects, a timeout, a size cap. */
export function defaultFetchCertificate(fetchImpl: typeof fetch, timeoutMs: number): FetchCertificate {
  return async (url) => {
    const response = await fetchImpl(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) })
    if (!response.ok) throw new Error(`certificate download answered ${response.status}`)
    const pem = await response.text()
    if (pem.length > 64 * 1024) throw new Error('certificate is too large')
    return pem
  }
}

export type VerifyResult = { ok: true } | { ok: false; reason: string; retry: boolean }

export interface SnsVerifier {
  /** Checks the signature of a message. `retry` is true when the certificate could not be fetched. */
  verify(message: SnsMessage, now?: number): Promise<VerifyResult>
}

/**
 * Verifies SNS signatures (SignatureVersion 1 = SHA1withRSA, 2 = SHA256withRSA). Certificates are
 * fetched only from SNS hosts and cached by URL (at most `cacheSize`, oldest dropped first).
 */
export function createSnsVerifier({
  fetchCertificate,
  cacheSize = 100,
}: {
  fetchCertificate: FetchCertificate
  cacheSize?: number
}): SnsVerifier {
  const certificates = new Map<string, Promise<X509Certificate>>()

  function certificate(url: string): Promise<X509Certificate> {
    const cached = certificates.get(url)
    if (cached) return cached
    const loading = (async () => new X509Certificate(await fetchCertificate(url)))()
    certificates.set(url, loading)
    if (certificates.size > cacheSize) certificates.delete(certificates.keys().next().value as string)
    // A failed download is not cached: the next message tries again.
    loading.catch(() => certificates.delete(url))
    return loading
  }

  return {
    async verify(message, now = Date.now()) {
      const algorithm =
        message.SignatureVersion === '1' ? 'RSA-SHA1' : message.SignatureVersion === '2' ? 'RSA-SHA256' : undefined
      if (!algorithm) return { ok: false, reason: 'unsupported SignatureVersion', retry: false }
      if (!message.Signature) return { ok: false, reason: 'signature missing', retry: false }
      if (!isSnsUrl(message.SigningCertURL)) {
        return { ok: false, reason: 'SigningCertURL is not an https URL on an SNS host', retry: false }
      }
      let cert: X509Certificate
      try {
        cert = await certificate(message.SigningCertURL)
      } catch (error) {
        return { ok: false, reason: `certificate unavailable: ${describeError(error)}`, retry: true }
      }
      if (Date.parse(cert.validFrom) > now || Date.parse(cert.validTo) < now) {
        return { ok: false, reason: 'certificate expired or not yet valid', retry: false }
      }
      let valid = false
      try {
        valid = createVerify(algorithm)
          .update(stringToSign(message), 'utf8')
          .verify(cert.publicKey, message.Signature, 'base64')
      } catch {
        valid = false
      }
      return valid ? { ok: true } : { ok: false, reason: 'signature does not match', retry: false }
    },
  }
}

/** Confirms a subscription by fetching its SubscribeURL, which must be on an SNS host. */
export async function confirmSubscription(fetchImpl: typeof fetch, url: string, timeoutMs: number): Promise<void> {
  if (!isSnsUrl(url)) {
    throw new MailstreamError('E_WEBHOOK', 'SubscribeURL is not an https URL on an SNS host', { field: 'SubscribeURL' })
  }
  const response = await fetchImpl(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) })
  if (!response.ok) {
    throw new MailstreamError('E_WEBHOOK', `confirming the subscription answered ${response.status}`)
  }
  await response.body?.cancel()
}
