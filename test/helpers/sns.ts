import { generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto'
import { vi } from 'vitest'
import type { SesWebhookHandler } from '../../src/index.js'

// A self-signed X.509 certificate built from DER by hand, so the tests need no openssl binary.

function derLength(length: number): Buffer {
  if (length < 0x80) return Buffer.from([length])
  const bytes: number[] = []
  for (let rest = length; rest > 0; rest >>= 8) bytes.unshift(rest & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

const der = (tag: number, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([tag]), derLength(body.length), body])
}
const sequence = (...parts: Buffer[]) => der(0x30, ...parts)

function oid(dotted: string): Buffer {
  const [first, second, ...rest] = dotted.split('.').map(Number)
  const bytes = [(first as number) * 40 + (second as number)]
  for (const value of rest) {
    const chunk = [value & 0x7f]
    for (let v = value >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80)
    bytes.push(...chunk)
  }
  return der(0x06, Buffer.from(bytes))
}

const utcTime = (date: Date) =>
  der(0x17, Buffer.from(`${date.toISOString().slice(2, 19).replace(/[-:T]/g, '')}Z`, 'ascii'))
const commonName = (name: string) => sequence(der(0x31, sequence(oid('2.5.4.3'), der(0x0c, Buffer.from(name, 'utf8')))))

export interface TestCertificate {
  pem: string
  privateKey: KeyObject
}

/** An RSA key and a self-signed certificate for it (CN sns.amazonaws.com, valid for a day). */
export function createTestCertificate(): TestCertificate {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const algorithm = sequence(oid('1.2.840.113549.1.1.11'), der(0x05)) // sha256WithRSAEncryption
  const now = Date.now()
  const tbs = sequence(
    der(0x02, Buffer.from([0x01, 0x23, 0x45])),
    algorithm,
    commonName('sns.amazonaws.com'),
    sequence(utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 86_400_000))),
    commonName('sns.amazonaws.com'),
    publicKey.export({ type: 'spki', format: 'der' }),
  )
  const signature = sign('sha256', tbs, privateKey)
  const certificate = sequence(tbs, algorithm, der(0x03, Buffer.from([0]), signature))
  const base64 = certificate.toString('base64').replace(/.{64}/g, '$&\n')
  return { pem: `-----BEGIN CERTIFICATE-----\n${base64}\n-----END CERTIFICATE-----\n`, privateKey }
}

export const TOPIC_ARN = 'arn:aws:sns:ap-northeast-2:123456789012:ses-events'
// The shape SNS uses: a lower-case hex name (this one is made up).
export const CERT_URL =
  'https://sns.ap-northeast-2.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem'

export type SnsEnvelope = Record<string, string>

/** The string SNS signs: the listed fields in order, each as `Name\nvalue\n`. */
function signedString(message: SnsEnvelope): string {
  const fields =
    message.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type']
  return fields
    .filter((field) => message[field] !== undefined)
    .map((field) => `${field}\n${message[field]}\n`)
    .join('')
}

/** Signs an SNS message as SNS does (v1 SHA1, v2 SHA256) and returns it with its signature fields. */
export function signSns(
  message: SnsEnvelope,
  privateKey: KeyObject,
  { version = '2', certUrl = CERT_URL }: { version?: '1' | '2'; certUrl?: string } = {},
): SnsEnvelope {
  const signature = sign(version === '1' ? 'sha1' : 'sha256', Buffer.from(signedString(message), 'utf8'), privateKey)
  return { ...message, SignatureVersion: version, Signature: signature.toString('base64'), SigningCertURL: certUrl }
}

/** An SNS Notification envelope around an SES event (unsigned). */
export function notification(event: unknown, overrides: Partial<SnsEnvelope> = {}): SnsEnvelope {
  return {
    Type: 'Notification',
    MessageId: randomUUID(),
    TopicArn: TOPIC_ARN,
    Message: JSON.stringify(event),
    Timestamp: new Date().toISOString(),
    ...overrides,
  }
}

export interface SesEventInput {
  type:
    | 'Send'
    | 'Delivery'
    | 'Bounce'
    | 'Complaint'
    | 'Reject'
    | 'Open'
    | 'Click'
    | 'Rendering Failure'
    | 'DeliveryDelay'
  messageId: string
  jobId?: string
  batchId?: string
  recipients?: string[]
  bounceType?: 'Permanent' | 'Transient' | 'Undetermined'
  /** Identity notifications name the type `notificationType` and carry no tags. */
  identity?: boolean
}

/** An SES event record as SES publishes it to SNS. */
export function sesEvent(input: SesEventInput): Record<string, unknown> {
  const recipients = input.recipients ?? ['reader@example.com']
  const timestamp = new Date().toISOString()
  const tags: Record<string, string[]> = { 'ses:configuration-set': ['events'], type: ['newsletter'] }
  if (input.jobId !== undefined) tags.job_id = [input.jobId]
  if (input.batchId !== undefined) tags.batch_id = [input.batchId]
  const mail: Record<string, unknown> = {
    timestamp,
    source: 'noreply@example.com',
    messageId: input.messageId,
    destination: recipients,
  }
  if (!input.identity) mail.tags = tags
  const record: Record<string, unknown> = { [input.identity ? 'notificationType' : 'eventType']: input.type, mail }
  const addresses = recipients.map((emailAddress) => ({ emailAddress }))
  switch (input.type) {
    case 'Delivery':
      record.delivery = { timestamp, recipients, processingTimeMillis: 500, smtpResponse: '250 ok' }
      break
    case 'Bounce':
      record.bounce = {
        bounceType: input.bounceType ?? 'Permanent',
        bounceSubType: 'General',
        bouncedRecipients: addresses,
        timestamp,
        feedbackId: randomUUID(),
      }
      break
    case 'Complaint':
      record.complaint = { complainedRecipients: addresses, timestamp, feedbackId: randomUUID() }
      break
    case 'Reject':
      record.reject = { reason: 'Bad content' }
      break
    case 'Open':
      record.open = { timestamp, ipAddress: '192.0.2.1', userAgent: 'Mail' }
      break
    case 'Click':
      record.click = { timestamp, ipAddress: '192.0.2.1', userAgent: 'Mail', link: 'https://example.com/a' }
      break
    case 'Rendering Failure':
      record.failure = { errorMessage: 'missing variable', templateName: 'welcome' }
      break
    case 'DeliveryDelay':
      record.deliveryDelay = { timestamp, delayType: 'MailboxFull', delayedRecipients: addresses }
      break
    default:
      record.send = {}
  }
  return record
}

export interface SnsFixture {
  certificate: TestCertificate
  /** Serves the test certificate at CERT_URL and fails for any other URL. */
  fetchCertificate: ReturnType<typeof vi.fn<(url: string) => Promise<string>>>
  sign(message: SnsEnvelope, options?: { version?: '1' | '2'; certUrl?: string }): SnsEnvelope
  /** A signed notification around an SES event. */
  signedEvent(input: SesEventInput, overrides?: Partial<SnsEnvelope>): SnsEnvelope
}

export function snsFixture(): SnsFixture {
  const certificate = createTestCertificate()
  const fetchCertificate = vi.fn(async (url: string) => {
    if (url !== CERT_URL) throw new Error(`no certificate at ${url}`)
    return certificate.pem
  })
  const sign: SnsFixture['sign'] = (message, options) => signSns(message, certificate.privateKey, options)
  return {
    certificate,
    fetchCertificate,
    sign,
    signedEvent: (input, overrides) => sign(notification(sesEvent(input), overrides)),
  }
}

/** Posts an SNS message the way SNS does: JSON text with the message type header. */
export function post(handler: SesWebhookHandler, message: SnsEnvelope) {
  return handler.handle({
    body: JSON.stringify(message),
    headers: { 'content-type': 'text/plain; charset=UTF-8', 'x-amz-sns-message-type': message.Type },
  })
}
