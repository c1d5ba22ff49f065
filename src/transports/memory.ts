import { randomUUID } from 'node:crypto'
import { MailstreamError, type RetryClass, TransportError } from '../errors.js'
import { type Address, type AddressInput, parseAddress } from '../job.js'
import { type EmailMessage, type SendContext, type SendResult, senderOf, type Transport } from '../transport.js'

export interface MemoryTransportOptions {
  name?: string
  /** Simulated time each send takes, in ms (0 = resolve on the next tick). */
  latencyMs?: number
  /** Keep at most this many messages (oldest dropped first). Default: keep all. */
  maxMessages?: number
  /**
   * Sender of messages that have none (as the SES and SMTP transports' `from`). A message with
   * neither is refused as they refuse it (`NoSender`, never retried), so a test fails where
   * production would.
   */
  from?: AddressInput
}

export interface SentMessage {
  message: EmailMessage
  messageId: string
  /** Epoch ms. */
  sentAt: number
  attempt: number
}

/** Matches a message when every given field matches. Addresses compare case-insensitively. */
export interface MessageMatch {
  to?: string
  subject?: string | RegExp
  jobId?: string
  type?: string
  batchId?: string
}

export interface FailOptions {
  retryAfterMs?: number
  message?: string
  statusCode?: string | number
  /** Make the failure ask the worker to pause (as SES does when sending is paused). */
  pause?: boolean
}

export interface MemoryTransport extends Transport {
  /** Messages sent so far, oldest first. */
  readonly messages: readonly SentMessage[]
  /** Every call to send, failed ones included. */
  readonly attempts: number
  find(match: MessageMatch | ((sent: SentMessage) => boolean)): SentMessage | undefined
  filter(match: MessageMatch | ((sent: SentMessage) => boolean)): SentMessage[]
  /** Resolves with the first message that matches, sent before or after the call. */
  waitFor(
    match?: MessageMatch | ((sent: SentMessage) => boolean),
    options?: { timeoutMs?: number },
  ): Promise<SentMessage>
  /** Resolves once at least `count` messages have been sent. */
  waitForCount(count: number, options?: { timeoutMs?: number }): Promise<SentMessage[]>
  /** The next `times` sends throw a `TransportError` with `retry: kind`. */
  failNext(kind: RetryClass, times?: number, options?: FailOptions): void
  clear(): void
}

interface Waiter {
  check(): boolean
}

function matcher(match: MessageMatch | ((sent: SentMessage) => boolean) | undefined): (sent: SentMessage) => boolean {
  if (match === undefined) return () => true
  if (typeof match === 'function') return match
  return ({ message }) => {
    if (match.to !== undefined) {
      const wanted = match.to.toLowerCase()
      const all = [...message.to, ...(message.cc ?? []), ...(message.bcc ?? [])]
      if (!all.some((address) => address.address.toLowerCase() === wanted)) return false
    }
    if (match.subject !== undefined) {
      if (typeof match.subject === 'string' ? message.subject !== match.subject : !match.subject.test(message.subject))
        return false
    }
    if (match.jobId !== undefined && message.jobId !== match.jobId) return false
    if (match.type !== undefined && message.type !== match.type) return false
    if (match.batchId !== undefined && message.batchId !== match.batchId) return false
    return true
  }
}

/** The error `failNext` asked for. */
function injected(kind: RetryClass, options: FailOptions): TransportError {
  return new TransportError(options.message ?? `memory transport: injected ${kind} failure`, {
    retry: kind,
    ...(options.retryAfterMs !== undefined && { retryAfterMs: options.retryAfterMs }),
    ...(options.statusCode !== undefined && { statusCode: options.statusCode }),
    ...(options.pause !== undefined && { pause: options.pause }),
  })
}

/** Records messages in memory and fails on request: the transport for unit tests and benchmarks. */
export function createMemoryTransport(options: MemoryTransportOptions = {}): MemoryTransport {
  const name = options.name ?? 'memory'
  const latencyMs = options.latencyMs ?? 0
  const maxMessages = options.maxMessages ?? Number.POSITIVE_INFINITY
  if (!Number.isFinite(latencyMs) || latencyMs < 0) {
    throw new MailstreamError('E_CONFIG', 'memory transport: latencyMs must be a number >= 0', { field: 'latencyMs' })
  }
  const defaultFrom = options.from === undefined ? undefined : parseAddress(options.from)
  if (options.from !== undefined && !defaultFrom) {
    throw new MailstreamError('E_CONFIG', 'memory transport: from must be an email address', { field: 'from' })
  }
  const messages: SentMessage[] = []
  const failures: { kind: RetryClass; options: FailOptions }[] = []
  const waiters = new Set<Waiter>()
  let attempts = 0

  function wait<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const found = check()
    if (found !== undefined) return Promise.resolve(found)
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = {
        check() {
          const value = check()
          if (value === undefined) return false
          clearTimeout(timer)
          waiters.delete(waiter)
          resolve(value)
          return true
        },
      }
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new MailstreamError('E_TIMEOUT', `memory transport: no ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      waiters.add(waiter)
    })
  }

  return {
    name,
    get messages() {
      return messages
    },
    get attempts() {
      return attempts
    },
    async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
      attempts++
      if (latencyMs > 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, latencyMs)
          context.signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer)
              reject(
                new TransportError('memory transport: send aborted', {
                  retry: 'later',
                }),
              )
            },
            { once: true },
          )
        })
      } else {
        await Promise.resolve()
      }
      senderOf(message, defaultFrom as Address | undefined, 'memory transport:')
      const failure = failures.shift()
      if (failure) throw injected(failure.kind, failure.options)
      const messageId = `<${randomUUID()}@${name}.mailstream>`
      messages.push({
        message,
        messageId,
        sentAt: Date.now(),
        attempt: context.attempt,
      })
      if (messages.length > maxMessages) messages.splice(0, messages.length - maxMessages)
      if (waiters.size > 0) for (const waiter of [...waiters]) waiter.check()
      return { messageId }
    },
    find(match) {
      return messages.find(matcher(match))
    },
    filter(match) {
      return messages.filter(matcher(match))
    },
    waitFor(match, { timeoutMs = 5000 } = {}) {
      const test = matcher(match)
      return wait(() => messages.find(test), timeoutMs, 'matching message')
    },
    waitForCount(count, { timeoutMs = 5000 } = {}) {
      return wait(() => (messages.length >= count ? messages.slice() : undefined), timeoutMs, `${count} messages`)
    },
    failNext(kind, times = 1, failOptions = {}) {
      if (!['throttle', 'later', 'never'].includes(kind)) {
        throw new MailstreamError('E_VALIDATION', "failNext: kind must be 'throttle', 'later' or 'never'", {
          field: 'kind',
        })
      }
      for (let i = 0; i < times; i++) failures.push({ kind, options: failOptions })
    },
    clear() {
      messages.length = 0
      failures.length = 0
      attempts = 0
    },
    async close() {
      for (const waiter of [...waiters]) waiter.check()
    },
  }
}
