import { describeError, MailstreamError } from '../errors.js'

/** Sent with every response of the dashboard. */
export const BASE_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
}
export const API_CSP = "default-src 'none'; frame-ancestors 'none'"
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export const EVENT_STREAM_HEADERS: Readonly<Record<string, string>> = {
  ...BASE_HEADERS,
  'content-security-policy': API_CSP,
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-store, no-transform',
  // Proxies such as nginx must pass events on at once.
  'x-accel-buffering': 'no',
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...BASE_HEADERS,
      'content-security-policy': API_CSP,
      'content-type': 'application/json; charset=utf-8',
      ...headers,
    },
  })
}

/** The API's error body: `{ error: { code, message } }`. */
export const problem = (status: number, code: string, message: string, headers?: Record<string, string>) =>
  json(status, { error: { code, message } }, headers)

export function errorResponse(error: unknown): Response {
  if (error instanceof MailstreamError) {
    const status =
      error.code === 'E_VALIDATION' ? 400 : error.code === 'E_NOT_FOUND' ? 404 : error.code === 'E_CLOSED' ? 503 : 500
    return problem(status, error.code, error.message)
  }
  return problem(500, 'E_INTERNAL', describeError(error))
}
