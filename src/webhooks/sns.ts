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

/** Downloads a PEM certificate. Only ever called with a URL that passed `isSnsCertificateUrl`. */
export type FetchCertificate = (url: string) => Promise<string>

// The label after `sns.` must be a region name: `[a-z0-9-]+` alone would also admit S3 bucket
// hosts such as `sns.s3.amazonaws.com` or `sns.s3-us-west-2.amazonaws.com`, where anyone owning a
// bucket named `sns` could serve a certificate.
const SNS_HOST_RE = /^sns\.[a-z]{2}(-[a-z]+)+-\d{1,2}\.amazonaws\.com(\.cn)?$/
// The whole URL, as SNS writes it: matching the raw text (not a parsed URL) leaves one spelling per
// certificate, so neither a query nor `..`, `%2e` or upper case can defeat the certificate cache.
const CERT_URL_RE =
  /^https:\/\/sns\.[a-z]{2}(-[a-z]+)+-\d{1,2}\.amazonaws\.com(\.cn)?\/SimpleNotificationService-[0-9a-f]{8,64}\.pem$/
const MESSAGE_ID_RE = /^[A-Za-z0-9-]{1,100}$/
const TYPES: readonly SnsMessageType[] = ['Notification', 'SubscriptionConfirmation', 'UnsubscribeConfirmation']

function parseUrl(value: unknown): URL | undefined {
  if (typeof value !== 'string' || value.length > 2048) return undefined
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

/**
 * True for an https URL on an SNS host (`sns.<region>.amazonaws.com`, or `.com.cn`) with no
 * user info and no explicit port. The host rule only: certificate URLs are checked with
 * `isSnsCertificateUrl` and SubscribeURLs with `isSnsSubscribeUrl` before anything is fetched.
 */
export function isSnsUrl(value: unknown): value is string {
  const url = parseUrl(value)
  return (
    url !== undefined &&
    url.protocol === 'https:' &&
    url.username === '' &&
    url.password === '' &&
    url.port === '' &&
    SNS_HOST_RE.test(url.hostname)
  )
}

/**
 * True only for the shape of an SNS signing certificate URL, exactly as SNS writes it:
 * `https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem` (or `.amazonaws.com.cn`),
 * no query, fragment, user info or port, lower case.
 */
export function isSnsCertificateUrl(value: unknown): value is string {
  return typeof value === 'string' && CERT_URL_RE.test(value) && parseUrl(value)?.href === value
}

/**
 * True for a SubscribeURL that only confirms a subscription to `topicArn`: an SNS host (as
 * `isSnsUrl`), path `/`, `Action=ConfirmSubscription`, the same `TopicArn`, no fragment.
 */
export function isSnsSubscribeUrl(value: unknown, topicArn: string): value is string {
  if (!isSnsUrl(value)) return false
  const url = new URL(value)
  return (
    url.pathname === '/' &&
    url.hash === '' &&
    !value.includes('#') &&
    url.searchParams.get('Action') === 'ConfirmSubscription' &&
    url.searchParams.getAll('TopicArn').length === 1 &&
    url.searchParams.get('TopicArn') === topicArn
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
 * fetched only from SNS certificate URLs and cached by URL (at most `cacheSize`, oldest dropped
 * first). At most `downloadsPerMinute` downloads start in a minute: SNS signs with a handful of
 * certificates, so a flood of forged messages naming new ones costs a few requests, not one each.
 */
export function createSnsVerifier({
  fetchCertificate,
  cacheSize = 100,
  downloadsPerMinute = 10,
}: {
  fetchCertificate: FetchCertificate
  cacheSize?: number
  downloadsPerMinute?: number
}): SnsVerifier {
  const certificates = new Map<string, Promise<X509Certificate>>()
  let windowStartedAt = 0
  let downloads = 0

  function certificate(url: string): Promise<X509Certificate> {
    const cached = certificates.get(url)
    if (cached) return cached
    const now = Date.now()
    if (now - windowStartedAt >= 60_000) {
      windowStartedAt = now
      downloads = 0
    }
    if (downloads >= downloadsPerMinute) {
      return Promise.reject(new Error(`more than ${downloadsPerMinute} certificate downloads in a minute`))
    }
    downloads++
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
      if (!isSnsCertificateUrl(message.SigningCertURL)) {
        return {
          ok: false,
          reason: 'SigningCertURL is not https://sns.<region>.amazonaws.com/SimpleNotificationService-<hex>.pem',
          retry: false,
        }
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

/** Confirms a subscription to `topicArn` by fetching its SubscribeURL (see `isSnsSubscribeUrl`). */
export async function confirmSubscription(
  fetchImpl: typeof fetch,
  url: string,
  topicArn: string,
  timeoutMs: number,
): Promise<void> {
  if (!isSnsSubscribeUrl(url, topicArn)) {
    throw new MailstreamError('E_WEBHOOK', 'SubscribeURL is not an SNS ConfirmSubscription URL for the topic', {
      field: 'SubscribeURL',
    })
  }
  const response = await fetchImpl(url, { redirect: 'error', signal: AbortSignal.timeout(timeoutMs) })
  if (!response.ok) {
    throw new MailstreamError('E_WEBHOOK', `confirming the subscription answered ${response.status}`)
  }
  await response.body?.cancel()
}
