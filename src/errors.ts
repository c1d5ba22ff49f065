import type { z } from 'zod'

export type ErrorCode =
  | 'E_VALIDATION'
  | 'E_CONFIG'
  | 'E_RATE_LIMITED'
  | 'E_TEMPLATE'
  | 'E_TRANSPORT'
  | 'E_NOT_FOUND'
  | 'E_REDIS'
  | 'E_CLOSED'
  | 'E_IDEMPOTENCY_CONFLICT'
  | 'E_TIMEOUT'
  | 'E_WEBHOOK'
  | 'E_CONSENT'
  /** PostgreSQL failed or did not answer (the outbox relay, `mailstream/pg`). */
  | 'E_DATABASE'

/** How a failed send should be handled: see DESIGN "Failures are classified by the transport". */
export type RetryClass = 'throttle' | 'later' | 'never'

const BRAND: unique symbol = Symbol.for('mailstream.error') as never

export interface MailstreamErrorOptions {
  cause?: unknown
  /** The input field the error is about, as a dotted path (`to`, `headers.X-Tag`). */
  field?: string
}

/**
 * The one error class of mailstream. Branch on `code`. `instanceof` works across the
 * ESM and CJS builds and across subpath bundles, because it checks a brand, not a prototype.
 */
export class MailstreamError extends Error {
  readonly code: ErrorCode
  readonly field?: string
  readonly [BRAND] = true

  constructor(code: ErrorCode, message: string, options: MailstreamErrorOptions = {}) {
    super(message.startsWith('[mailstream]') ? message : `[mailstream] ${message}`, { cause: options.cause })
    this.name = 'MailstreamError'
    this.code = code
    if (options.field !== undefined) this.field = options.field
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[BRAND] !== true) return false
    if (this === MailstreamError) return true
    return Function.prototype[Symbol.hasInstance].call(this, value) || (value as Error).name === this.name
  }
}

/** Thrown when a limit is reached (verification codes); `retryAfterMs` says when to try again. */
export class RateLimitError extends MailstreamError {
  readonly retryAfterMs: number

  constructor(message: string, retryAfterMs: number, options: MailstreamErrorOptions = {}) {
    super('E_RATE_LIMITED', message, options)
    this.name = 'RateLimitError'
    this.retryAfterMs = retryAfterMs
  }
}

export interface TransportErrorOptions extends MailstreamErrorOptions {
  retry: RetryClass
  retryAfterMs?: number
  /** Provider status or reply code (`554`, `MessageRejected`), for logs and status. */
  statusCode?: string | number
  /** Set by SES when the account cannot send at all: the worker pauses instead of failing jobs. */
  pause?: boolean
}

/** What a transport throws when a send fails. `retry` decides what the worker does next. */
export class TransportError extends MailstreamError {
  readonly retry: RetryClass
  readonly retryAfterMs?: number
  readonly statusCode?: string | number
  readonly pause: boolean

  constructor(message: string, options: TransportErrorOptions) {
    super('E_TRANSPORT', message, options)
    this.name = 'TransportError'
    this.retry = options.retry
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs
    if (options.statusCode !== undefined) this.statusCode = options.statusCode
    this.pause = options.pause ?? false
  }
}

/** Dotted path of a zod issue; for unknown keys, the first unknown key. */
export function issueField(issue: z.core.$ZodIssue, fallback: string): string {
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0] ?? ''] : issue.path
  return path.map((part) => String(part)).join('.') || fallback
}

/**
 * The error for input zod refused: `field` names the first bad field (`fallback` when the issue
 * has no path), and the message lists every issue as `field: message`, after `lead`.
 */
export function issuesError(code: ErrorCode, error: z.ZodError, fallback: string, lead = ''): MailstreamError {
  const issues = error.issues.map((issue) => ({ field: issueField(issue, fallback), message: issue.message }))
  return new MailstreamError(code, `${lead}${issues.map((issue) => `${issue.field}: ${issue.message}`).join('; ')}`, {
    field: issues[0]?.field ?? fallback,
    cause: error,
  })
}

export function isMailstreamError(value: unknown): value is MailstreamError {
  return value instanceof MailstreamError
}

/**
 * Short, single-line description of any thrown value, for status hashes and dead letters. Never
 * throws: a value whose `message` getter or string conversion throws (a null-prototype object, a
 * hostile `toString`) is described by its type instead.
 */
export function describeError(error: unknown): string {
  return oneLine(tryDescribe(error))
}

function tryDescribe(error: unknown): string {
  try {
    if (error instanceof Error) {
      const message: unknown = error.message
      if (typeof message === 'string') return message
    }
  } catch {
    // fall through to the string conversion
  }
  try {
    return String(error)
  } catch {
    // a null-prototype object or a throwing toString
  }
  try {
    return `unreadable ${Object.prototype.toString.call(error)} thrown`
  } catch {
    return 'unreadable value thrown'
  }
}

const oneLine = (text: string): string => text.replace(/[\r\n]+/g, ' ').slice(0, 1000)
