import { z } from 'zod'
import { describeError, MailstreamError, TransportError } from '../errors.js'
import { type Address, type AddressInput, type Priority, parseAddress } from '../job.js'
import { parseOptions } from '../options.js'
import type { EmailMessage, SendContext, SendResult, Transport } from '../transport.js'
import { type Breaker, type BreakerState, createBreaker } from './breaker.js'

export type { BreakerState } from './breaker.js'

/** `failover`: a job goes to the next transport at once. `wait`: it waits for the first (primary) transport. */
export type FailoverPolicy = 'failover' | 'wait'

export interface FailoverEntry {
  transport: Transport
  /**
   * Sender used when this transport sends: it replaces the message's From (the job's or the
   * worker's), as each provider sends only from its own verified identities. Default: the
   * message's From, unchanged.
   */
  from?: AddressInput
  /**
   * The health check `verify()` runs for this transport. Default: the transport's own `verify()`
   * when it has one (the SMTP transport does); for SES, for example
   * `(signal) => ses.getSendQuota({ signal })`.
   */
  verify?: (signal: AbortSignal) => Promise<unknown>
}

export interface FailoverTransportOptions {
  /** The transports in order of preference, the primary first; names must differ. */
  transports: FailoverEntry[]
  breaker?: {
    /** Failures within `windowMs`, with no success between them, that open a transport's breaker. Default 5. */
    failures?: number
    /** How far back failures count. Default 30 000. */
    windowMs?: number
    /** How long an open breaker stays open before one probe send goes through. Default 30 000. */
    openMs?: number
  }
  /**
   * What a job does when the primary cannot take it, by priority; `types` (by job type) wins
   * over the priority. Defaults: high `failover`, normal `failover`, low `wait`.
   */
  policy?: {
    high?: FailoverPolicy
    normal?: FailoverPolicy
    low?: FailoverPolicy
    types?: Record<string, FailoverPolicy>
  }
  /**
   * Tells whether an error shows the transport did NOT accept the message (so the next one may
   * send it in the same try): `true` refused, `false` unknown (maybe accepted), `undefined` to
   * use the built-in rule. For transports of your own whose errors carry no reply or status.
   */
  refused?: (error: unknown) => boolean | undefined
  /** How long `verify()` waits for each transport's check. Default 10 000. */
  verifyTimeoutMs?: number
  /** Default `failover`. */
  name?: string
}

export interface FailoverEvent {
  jobId: string
  type: string
  priority: Priority
  /** The transport that refused the message, or was skipped because its breaker is open. */
  from: string
  /** The transport the message goes to now. */
  to: string
  /** `breaker open` (`breaker half-open` while another send probes it), or the refusal. */
  reason: string
}

export interface BreakerEvent {
  transport: string
  from: BreakerState
  to: BreakerState
  /** Epoch ms. */
  at: number
}

export interface VerifyResult {
  transport: string
  /** `skipped`: the transport has no check. */
  status: 'ok' | 'failed' | 'skipped'
  durationMs: number
  error?: string
}

export interface FailoverEvents {
  failover: FailoverEvent
  breaker: BreakerEvent
  verify: VerifyResult
  /** A listener threw: the send goes on, and the error arrives here. */
  error: MailstreamError
}
export type FailoverEventName = keyof FailoverEvents

export interface FailoverTransportStats {
  name: string
  state: BreakerState
  /** Messages this transport sent. */
  sent: number
  /** Sends this transport failed (refused, timed out, or a permanent error). */
  failed: number
  /** Of `sent`, the messages it took over from a transport before it. */
  tookOver: number
  /** When the breaker opened (epoch ms), while it is not closed. */
  openedAt?: number
}

export interface FailoverTransport extends Transport {
  /** Runs each transport's health check (bounded by `verifyTimeoutMs`), emits `verify` per transport, never throws. */
  verify(): Promise<VerifyResult[]>
  on<E extends FailoverEventName>(event: E, listener: (payload: FailoverEvents[E]) => void): () => void
  /** Per transport, in order: breaker state and send counts of this process. */
  stats(): FailoverTransportStats[]
  /** Closes every transport that has `close()`. */
  close(): Promise<void>
}

const PREFIX = '[mailstream] [failover]'
const policySchema = z.enum(['failover', 'wait'])
const isTransport = (value: unknown): value is Transport =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as Transport).name === 'string' &&
  typeof (value as Transport).send === 'function'

const optionsSchema = z.strictObject({
  transports: z
    .array(
      z.strictObject({
        transport: z.custom<Transport>(isTransport, { message: 'must be a transport (an object with name and send)' }),
        from: z
          .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
            message: 'must be an email address like a@example.com or "Name <a@example.com>"',
          })
          .optional(),
        verify: z
          .custom<(signal: AbortSignal) => Promise<unknown>>((value) => typeof value === 'function', {
            message: 'must be a function',
          })
          .optional(),
      }),
    )
    .min(1)
    .max(10)
    .superRefine((entries, ctx) => {
      const seen = new Set<string>()
      entries.forEach((entry, index) => {
        if (seen.has(entry.transport.name)) {
          ctx.addIssue({
            code: 'custom',
            path: [index, 'transport'],
            message: `another transport is named ${entry.transport.name}: give each one its own name`,
          })
        }
        seen.add(entry.transport.name)
      })
    }),
  breaker: z
    .strictObject({
      failures: z.number().int().min(1).max(1000).default(5),
      windowMs: z.number().int().min(1).default(30_000),
      openMs: z.number().int().min(1).default(30_000),
    })
    .default({ failures: 5, windowMs: 30_000, openMs: 30_000 }),
  policy: z
    .strictObject({
      high: policySchema.default('failover'),
      normal: policySchema.default('failover'),
      low: policySchema.default('wait'),
      types: z.record(z.string().min(1).max(64), policySchema).default({}),
    })
    .default({ high: 'failover', normal: 'failover', low: 'wait', types: {} }),
  refused: z
    .custom<(error: unknown) => boolean | undefined>((value) => typeof value === 'function', {
      message: 'must be a function',
    })
    .optional(),
  verifyTimeoutMs: z.number().int().min(1).max(600_000).default(10_000),
  name: z.string().min(1).max(100).default('failover'),
})

/** What an error says about the message: refused (safe to send elsewhere), unknown (maybe sent), or permanent. */
type Verdict = 'refused' | 'unknown' | 'permanent'

/** Errors of the connection or session, before any message was handed over. */
const REFUSED_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAUTH',
  'EDNS',
  'ETLS',
])
/** nodemailer's stages before MAIL FROM: a reply there cannot be about the message. */
const SESSION_COMMANDS = /^(?:CONN|EHLO|HELO|LHLO|STARTTLS|AUTH\b)/

interface Inspected {
  code?: unknown
  originalCode?: unknown
  responseCode?: unknown
  command?: unknown
  $metadata?: { httpStatusCode?: unknown }
  cause?: unknown
}

/** The error and its causes (a few levels), as plain objects; never throws. */
function chain(error: unknown): Inspected[] {
  const out: Inspected[] = []
  let current: unknown = error
  try {
    for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
      out.push(current as Inspected)
      current = (current as Inspected).cause
    }
  } catch {
    // a hostile error object: what was read so far
  }
  return out
}

/** The provider answered with a refusal (a reply code, an HTTP status), or the connection never got that far. */
function showsRefusal(error: unknown): boolean {
  return chain(error).some((link) => {
    try {
      const reply = link.responseCode
      if (typeof reply === 'number' && reply >= 400) return true
      const status = link.$metadata?.httpStatusCode
      if (typeof status === 'number' && status >= 400) return true
      return REFUSED_CODES.has(String(link.code)) || REFUSED_CODES.has(String(link.originalCode))
    } catch {
      return false
    }
  })
}

/** A permanent error that is about the provider (its greeting, TLS or credentials), not the message. */
function providerFault(error: unknown): boolean {
  return chain(error).some((link) => {
    try {
      return (
        (typeof link.command === 'string' && SESSION_COMMANDS.test(link.command)) ||
        link.code === 'EAUTH' ||
        link.code === 'ETLS'
      )
    } catch {
      return false
    }
  })
}

/** The codes the worker dead-letters at once when a transport throws them (as src/worker/retry.ts). */
const PERMANENT_CODES = new Set<string>(['E_TEMPLATE', 'E_CONFIG', 'E_VALIDATION'])

function isPermanent(error: unknown): boolean {
  try {
    if (error instanceof TransportError) return error.retry === 'never' && !error.pause && !providerFault(error)
    // A problem of this side (a template, an option): the next transport would fail the same way.
    if (error instanceof MailstreamError) return PERMANENT_CODES.has(error.code)
    return error instanceof RangeError
  } catch {
    return false
  }
}

function judge(error: unknown, signal: AbortSignal, refused: FailoverTransportOptions['refused']): Verdict {
  if (isPermanent(error)) return 'permanent'
  if (signal.aborted) return 'unknown'
  try {
    const custom = refused?.(error)
    if (custom !== undefined) return custom ? 'refused' : 'unknown'
  } catch {
    // the hook threw: the built-in rule decides
  }
  try {
    if (error instanceof TransportError && (error.retry === 'throttle' || error.pause)) return 'refused'
  } catch {}
  if (showsRefusal(error)) return 'refused'
  // A reset, a socket timeout, an abort, anything unknown: the provider may have the message.
  return 'unknown'
}

/** The worker's hard stop aborts sends with `E_CLOSED`; its send timeout with a `TransportError`. */
function stoppedByHost(signal: AbortSignal): boolean {
  try {
    return signal.aborted && signal.reason instanceof MailstreamError && signal.reason.code === 'E_CLOSED'
  } catch {
    return false
  }
}

/** Settles when the send does, or rejects when the signal aborts (a transport that ignores its signal). */
function untilAborted<T>(send: () => Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new Error('aborted'))
    signal.addEventListener('abort', onAbort, { once: true })
    let pending: Promise<T>
    try {
      pending = send()
    } catch (error) {
      pending = Promise.reject(error)
    }
    Promise.resolve(pending).then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      },
    )
  })
}

type Listener = (payload: never) => void

interface Member {
  transport: Transport
  name: string
  from?: Address
  verify?: (signal: AbortSignal) => Promise<unknown>
  breaker: Breaker
  sent: number
  failed: number
  tookOver: number
}

/** The job waits without using an attempt until a breaker lets a probe through. */
function held(reason: string, retryAfterMs: number, cause?: unknown): TransportError {
  return new TransportError(`${PREFIX} ${reason}`, {
    retry: 'throttle',
    retryAfterMs: Math.max(1000, retryAfterMs),
    statusCode: 'CircuitOpen',
    ...(cause !== undefined && { cause }),
  })
}

/**
 * A refusal nobody else takes, as the worker should see it: a throttle or a transient error as
 * it is; a paused account or a provider's own permanent fault as a hold, never as a pause of
 * the whole worker (the other transports may still send) nor as a dead job.
 */
function surface(error: unknown, member: Member, openMs: number): unknown {
  try {
    if (error instanceof TransportError && !error.pause && error.retry !== 'never') return error
    if (error instanceof TransportError) {
      return held(`${member.name} cannot send: ${describeError(error)}`, member.breaker.retryAfterMs() || openMs, error)
    }
  } catch {}
  return new TransportError(`${PREFIX} ${member.name}: ${describeError(error)}`, { retry: 'later', cause: error })
}

/** Maybe accepted: retried later (an attempt is used), never sent elsewhere in this try. */
function uncertain(error: unknown, member: Member): TransportError {
  let statusCode: string | number = 'Unknown'
  try {
    if (error instanceof TransportError && error.statusCode !== undefined) statusCode = error.statusCode
  } catch {}
  return new TransportError(
    `${PREFIX} ${member.name} may have accepted the message (no answer that says otherwise), retried later: ${describeError(error)}`,
    { retry: 'later', statusCode, cause: error },
  )
}

function aborted(signal: AbortSignal, last: unknown): TransportError {
  return new TransportError(`${PREFIX} send aborted before the next transport: ${describeError(signal.reason)}`, {
    retry: 'later',
    statusCode: 'AbortError',
    cause: last ?? signal.reason,
  })
}

/** One transport's health check within `timeoutMs`; never rejects. */
async function verifyMember(member: Member, timeoutMs: number): Promise<VerifyResult> {
  const started = Date.now()
  if (!member.verify) return { transport: member.name, status: 'skipped', durationMs: 0 }
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new MailstreamError('E_TIMEOUT', `no answer within ${timeoutMs} ms`)
      controller.abort(error)
      reject(error)
    }, timeoutMs)
    timer.unref?.()
  })
  const check = member.verify
  try {
    await Promise.race([untilAborted(() => check(controller.signal), controller.signal), timeout])
    return { transport: member.name, status: 'ok', durationMs: Date.now() - started }
  } catch (error) {
    return { transport: member.name, status: 'failed', durationMs: Date.now() - started, error: describeError(error) }
  } finally {
    clearTimeout(timer)
  }
}

/** The failover events' listeners; one that throws becomes an `error` event, never a failed send. */
function createListeners() {
  const listeners = new Map<FailoverEventName, Set<Listener>>()

  function emit<E extends FailoverEventName>(event: E, payload: FailoverEvents[E]): void {
    const set = listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as (payload: FailoverEvents[E]) => void)(payload)
      } catch (error) {
        if (event !== 'error') {
          const wrapped =
            error instanceof MailstreamError
              ? error
              : new MailstreamError('E_TRANSPORT', `a '${event}' listener threw: ${describeError(error)}`, {
                  cause: error,
                })
          emit('error', wrapped)
        }
      }
    }
  }

  const on: FailoverTransport['on'] = (event, listener) => {
    let set = listeners.get(event)
    if (!set) {
      set = new Set()
      listeners.set(event, set)
    }
    const registered = listener as Listener
    set.add(registered)
    const current = set
    return () => {
      current.delete(registered)
    }
  }

  return { emit, on }
}

/**
 * Sends through the first transport whose circuit breaker lets it, in order. A send fails over
 * to the next transport in the same try only when the error shows the message was not accepted
 * (a refusal, a throttle, a paused account, a connection that never opened); a timeout or reset
 * counts against the breaker but is retried later, so that no message goes out twice. Permanent
 * errors about the message (a hard bounce) are thrown as they are and do not count.
 */
export function createFailoverTransport(options: FailoverTransportOptions): FailoverTransport {
  const config = parseOptions(optionsSchema, options, 'createFailoverTransport')
  const { emit, on } = createListeners()

  const members: Member[] = config.transports.map((entry) => {
    const name = entry.transport.name
    const ownVerify = (entry.transport as { verify?: unknown }).verify
    const verify =
      entry.verify ??
      (typeof ownVerify === 'function' ? () => (ownVerify as () => Promise<unknown>).call(entry.transport) : undefined)
    return {
      transport: entry.transport,
      name,
      ...(entry.from !== undefined && { from: parseAddress(entry.from) as Address }),
      ...(verify && { verify }),
      breaker: createBreaker({
        ...config.breaker,
        onChange: ({ from, to, at }) => emit('breaker', { transport: name, from, to, at }),
      }),
      sent: 0,
      failed: 0,
      tookOver: 0,
    }
  })

  // A Map: a job type named `constructor` must not find Object.prototype's.
  const typePolicies = new Map(Object.entries(config.policy.types))
  function policyFor(message: EmailMessage): FailoverPolicy {
    const byPriority = Object.hasOwn(config.policy, message.priority) ? config.policy[message.priority] : undefined
    return typePolicies.get(message.type) ?? byPriority ?? 'failover'
  }

  async function send(message: EmailMessage, context: SendContext): Promise<SendResult> {
    const { signal } = context
    const policy = policyFor(message)
    let previous: { member: Member; reason: string } | undefined
    let refusal: { error: unknown; member: Member } | undefined
    for (const [index, member] of members.entries()) {
      if (signal.aborted) throw aborted(signal, refusal?.error)
      if (!member.breaker.acquire()) {
        if (index === 0 && policy === 'wait') {
          throw held(
            `${member.name} is unavailable (breaker ${member.breaker.state}) and ${message.type} jobs of priority ${message.priority} wait for it`,
            member.breaker.retryAfterMs() || config.breaker.openMs,
          )
        }
        previous = { member, reason: `breaker ${member.breaker.state}` }
        continue
      }
      if (previous) {
        emit('failover', {
          jobId: message.jobId,
          type: message.type,
          priority: message.priority,
          from: previous.member.name,
          to: member.name,
          reason: previous.reason,
        })
      }
      const outgoing = member.from ? { ...message, from: member.from } : message
      try {
        const result = await untilAborted(() => member.transport.send(outgoing, context), signal)
        member.breaker.success()
        member.sent++
        if (index > 0) member.tookOver++
        return result
      } catch (error) {
        member.failed++
        const verdict = judge(error, signal, config.refused)
        if (verdict === 'permanent') {
          member.breaker.release()
          throw error
        }
        if (verdict === 'unknown' && stoppedByHost(signal)) {
          // The worker stopped: nothing to hold against the provider.
          member.breaker.release()
          throw uncertain(error, member)
        }
        member.breaker.failure()
        if (verdict === 'unknown') throw uncertain(error, member)
        refusal = { error, member }
        if (index === 0 && policy === 'wait') {
          // Once the breaker is open (a failed probe, or the failure that opened it), the job waits
          // for the primary without using attempts; before that it is an ordinary failure.
          if (member.breaker.state === 'closed') throw surface(error, member, config.breaker.openMs)
          throw held(
            `${member.name} refused the message and its breaker is ${member.breaker.state}; ${message.type} jobs of priority ${message.priority} wait for it: ${describeError(error)}`,
            member.breaker.retryAfterMs() || config.breaker.openMs,
            error,
          )
        }
        previous = { member, reason: describeError(error) }
      }
    }
    if (refusal) throw surface(refusal.error, refusal.member, config.breaker.openMs)
    const retryAfterMs = Math.min(...members.map((member) => member.breaker.retryAfterMs() || config.breaker.openMs))
    throw held(`every transport is unavailable (${members.map((m) => m.name).join(', ')})`, retryAfterMs)
  }

  return {
    name: config.name,
    send,

    async verify() {
      const results = await Promise.all(members.map((member) => verifyMember(member, config.verifyTimeoutMs)))
      for (const result of results) emit('verify', result)
      return results
    },

    on,

    stats() {
      return members.map((member) => {
        const state = member.breaker.state
        const openedAt = member.breaker.openedAt
        return {
          name: member.name,
          state,
          sent: member.sent,
          failed: member.failed,
          tookOver: member.tookOver,
          ...(openedAt !== undefined && { openedAt }),
        }
      })
    },

    async close() {
      const closing = await Promise.allSettled(members.map((member) => member.transport.close?.()))
      const failed = closing.find((outcome) => outcome.status === 'rejected')
      if (failed) throw failed.reason
    },
  }
}

const STATES: BreakerState[] = ['closed', 'half-open', 'open']

const escapeLabel = (value: string) => value.replace(/[\\"\n]/g, (char) => (char === '\n' ? '\\n' : `\\${char}`))
function metricLine(name: string, value: number, labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([key, label]) => `${key}="${escapeLabel(label)}"`)
  return `${name}{${pairs.join(',')}} ${Number.isFinite(value) ? value : 0}`
}

/**
 * Prometheus text (version 0.0.4) of failover transports' breakers and sends in this process, to
 * append to `queue.metrics()`: breaker state per transport (1 for the current state), sends per
 * transport by outcome, and the sends each transport took over. Give every failover transport of
 * the process in one call (each family is declared once); an empty string for none.
 */
export function failoverMetrics(...transports: Pick<FailoverTransport, 'name' | 'stats'>[]): string {
  if (transports.length === 0) return ''
  const rows = transports.flatMap((transport) =>
    transport.stats().map((stat) => ({ stat, labels: { failover: transport.name, transport: stat.name } })),
  )
  const families: [string, 'gauge' | 'counter', string, string[]][] = [
    [
      'mailstream_failover_breaker_state',
      'gauge',
      'Circuit breaker state of each transport of a failover transport (1 for the current state).',
      rows.flatMap(({ stat, labels }) =>
        STATES.map((state) =>
          metricLine('mailstream_failover_breaker_state', stat.state === state ? 1 : 0, { ...labels, state }),
        ),
      ),
    ],
    [
      'mailstream_failover_sends_total',
      'counter',
      'Sends of each transport of a failover transport, by outcome, in this process.',
      rows.flatMap(({ stat, labels }) => [
        metricLine('mailstream_failover_sends_total', stat.sent, { ...labels, outcome: 'sent' }),
        metricLine('mailstream_failover_sends_total', stat.failed, { ...labels, outcome: 'failed' }),
      ]),
    ],
    [
      'mailstream_failover_taken_over_total',
      'counter',
      'Messages a transport sent after a transport before it refused them or was unavailable.',
      rows.map(({ stat, labels }) => metricLine('mailstream_failover_taken_over_total', stat.tookOver, labels)),
    ],
  ]
  return `${families
    .map(([name, type, help, lines]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines].join('\n'))
    .join('\n')}\n`
}
