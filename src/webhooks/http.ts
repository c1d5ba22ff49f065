import { MailstreamError } from '../errors.js'
import { type SnsMessage, toSnsMessage } from './sns.js'
import type { SesWebhookOutcome, SesWebhookRequest, SesWebhookResponse } from './types.js'

const MAX_BODY_BYTES = 1024 * 1024
const TEXT = { 'content-type': 'text/plain; charset=utf-8' }

/** A plain-text response; `error` is set on 4xx and 5xx, for the host's logs. */
export function respond(
  status: number,
  outcome: SesWebhookOutcome,
  body: string,
  error?: MailstreamError,
): SesWebhookResponse {
  return error ? { status, body, headers: TEXT, outcome, error } : { status, body, headers: TEXT, outcome }
}

/** A 4xx: SNS should not send this again. `field` names the part of the message at fault. */
export function reject(status: number, reason: string, field?: string): SesWebhookResponse {
  const error = new MailstreamError('E_WEBHOOK', `ses webhook: ${reason}`, field === undefined ? {} : { field })
  return respond(status, 'rejected', reason, error)
}

/** A 500: SNS retries the notification later. */
export function failed(reason: string, cause?: unknown): SesWebhookResponse {
  return respond(500, 'failed', reason, new MailstreamError('E_WEBHOOK', `ses webhook: ${reason}`, { cause }))
}

/** The body as a parsed value, or why it cannot be one. */
function parseBody(body: unknown): { value: unknown } | 'invalid' | 'too large' {
  let text: string
  if (typeof body === 'string') text = body
  else if (body instanceof Uint8Array)
    text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8')
  else if (body instanceof ArrayBuffer) text = Buffer.from(body).toString('utf8')
  else return { value: body }
  if (Buffer.byteLength(text) > MAX_BODY_BYTES) return 'too large'
  try {
    return { value: JSON.parse(text) }
  } catch {
    return 'invalid'
  }
}

/** The SNS message a request carries (its signature not checked yet), or the response that rejects it. */
export function readSnsMessage(
  request: SesWebhookRequest | undefined,
): { message: SnsMessage } | { rejected: SesWebhookResponse } {
  const body = parseBody(request?.body)
  if (body === 'too large') return { rejected: reject(413, 'body is too large') }
  if (body === 'invalid') return { rejected: reject(400, 'body is not valid JSON') }
  const message = toSnsMessage(body.value)
  return typeof message === 'string' ? { rejected: reject(400, message) } : { message }
}
