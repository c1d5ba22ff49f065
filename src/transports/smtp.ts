import { hostname } from 'node:os'
import { createTransport, type SMTPPoolOptions, type Transporter } from 'nodemailer'
import { detectMimeType, parseHeaderValue } from 'nodemailer/lib/mime-funcs'
import { z } from 'zod'
import { TransportError, type TransportErrorOptions } from '../errors.js'
import { type Address, type AddressInput, parseAddress } from '../job.js'
import { parseOptions } from '../options.js'
import { type EmailMessage, type SendContext, type SendResult, senderOf, type Transport } from '../transport.js'
import { toMailOptions } from './mime.js'

export interface SmtpTransportOptions {
  /** `smtp://user:pass@host:587` or `smtps://...:465`: a pooled nodemailer transport is made from it. */
  url?: string
  /**
   * nodemailer SMTP pool options (host, port, auth, maxConnections, ...); `pool` defaults to true.
   * `name` is the EHLO name: by default the machine's host name when it is fully qualified, else
   * the domain of `from` (nodemailer alone would say `[127.0.0.1]`). With `url`, add `?name=`.
   */
  options?: SMTPPoolOptions
  /** Your own nodemailer transporter. Never closed by the transport. */
  transporter?: Transporter
  /** Sender for messages that name none. */
  from?: AddressInput
  /** The transport's name in logs and metrics (not the EHLO name: that is `options.name`). Default `smtp`. */
  name?: string
}

export interface SmtpTransport extends Transport {
  /** The nodemailer transporter in use. */
  readonly transporter: Transporter
  /** Connects and authenticates once, to check the settings. */
  verify(): Promise<void>
  /** Closes the pool if the transport created it, saying QUIT on its idle connections first. */
  close(): Promise<void>
}

const optionsSchema = z
  .strictObject({
    url: z
      .string()
      .regex(/^smtps?:\/\/\S+$/, 'must be an smtp:// or smtps:// URL')
      .optional(),
    options: z
      .custom<SMTPPoolOptions>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), {
        message: 'must be nodemailer SMTP options',
      })
      .optional(),
    transporter: z
      .custom<Transporter>(
        (value) => typeof value === 'object' && value !== null && typeof (value as Transporter).sendMail === 'function',
        { message: 'must be a nodemailer transporter (with sendMail)' },
      )
      .optional(),
    from: z
      .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
        message: 'must be an email address like a@example.com or "Name <a@example.com>"',
      })
      .optional(),
    name: z.string().min(1).max(100).default('smtp'),
  })
  .superRefine((options, ctx) => {
    const given = (['url', 'options', 'transporter'] as const).filter((key) => options[key] !== undefined)
    if (given.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: [given[1] ?? 'url'],
        message: 'give exactly one of url, options or transporter',
      })
    }
  })

const PREFIX = '[mailstream] [smtp]'
const MIME_FUNCS = { detectMimeType, parseHeaderValue }

interface NodemailerError {
  name?: string
  message?: string
  code?: string
  responseCode?: number
  /** The server's reply line, `454 4.7.1 Relay access denied`. */
  response?: string
  command?: string
}

/** Only a reply that says so is a rate limit: `454 Throttling failure: Maximum sending rate exceeded`. */
const RATE_RE = /\brate\b|throttl/i

/**
 * The retry class of an SMTP reply. 4xx is transient (`later`: an attempt is used, so a relay
 * that keeps refusing ends in the dead letters) unless its text speaks of a rate or throttling
 * (`throttle`); 5xx is permanent (`never`). A 454 is not a throttle by itself: Postfix answers
 * `454 4.7.1 Relay access denied` to a smarthost with wrong credentials and `454 4.7.0 TLS not
 * available` when its TLS is broken, neither of which waiting without an attempt would fix.
 */
function replyClass(reply: number, text: string): TransportErrorOptions['retry'] {
  if (reply >= 500) return 'never'
  // Addresses are left out: `<rate@example.com>: Relay access denied` says nothing about a rate.
  return RATE_RE.test(text.replace(/<[^>]*>/g, '')) ? 'throttle' : 'later'
}

/**
 * Reply codes decide (see `replyClass`). Without a reply: a malformed message -> never; sockets,
 * timeouts and everything else -> later.
 */
function toTransportError(error: unknown, signal: AbortSignal | undefined): TransportError {
  if (error instanceof TransportError) return error
  const smtp = (typeof error === 'object' && error !== null ? error : {}) as NodemailerError
  const text = smtp.message ?? String(error)
  const reply = smtp.responseCode
  const statusCode = reply ?? smtp.code ?? smtp.name ?? 'Error'
  const fail = (retry: TransportErrorOptions['retry']) =>
    new TransportError(`${PREFIX} ${text}`, { retry, statusCode, cause: error })

  if (signal?.aborted || smtp.code === 'EABORT' || smtp.name === 'AbortError') {
    return new TransportError(`${PREFIX} send aborted: ${text}`, { retry: 'later', statusCode, cause: error })
  }
  if (reply !== undefined && reply >= 400) return fail(replyClass(reply, smtp.response ?? text))
  if (smtp.code === 'EMESSAGE' || smtp.code === 'ECONFIG' || (smtp.code === 'EENVELOPE' && smtp.command === 'API')) {
    return fail('never')
  }
  return fail('later')
}

/**
 * The EHLO name when none is given: nodemailer says `[127.0.0.1]` when the machine's host name has
 * no dot (a container's `3f2a9c`), which strict relays and spam filters hold against the sender;
 * the domain of the transport's `from` names the sender better.
 */
function defaultEhloName(from: Address | undefined, hostname = safeHostname()): string | undefined {
  if (hostname.includes('.') && !/^[\d.]+$/.test(hostname)) return undefined
  const domain = from?.address.slice(from.address.lastIndexOf('@') + 1)
  return domain && /^[A-Za-z0-9.-]+$/.test(domain) ? domain : undefined
}

function safeHostname(): string {
  try {
    return hostname()
  } catch {
    return ''
  }
}

/** How long `close()` waits for the server's answer to QUIT before the sockets are closed anyway. */
const QUIT_WAIT_MS = 1000

interface PoolConnection {
  available?: boolean
  connection?: { quit?(): void; once?(event: 'end', listener: () => void): unknown }
}

/**
 * Says QUIT on the pool's idle connections and waits (at most `QUIT_WAIT_MS`) for them to end:
 * nodemailer's own `close()` drops the sockets without it, which servers log as a lost connection.
 */
async function quitIdle(transporter: Transporter): Promise<void> {
  // A connection whose send just resolved is handed back to the pool on the next turn.
  await new Promise<void>((resolve) => setImmediate(resolve))
  const pool = (transporter as unknown as { transporter?: { _connections?: unknown } }).transporter
  const resources = Array.isArray(pool?._connections) ? (pool._connections as PoolConnection[]) : []
  const ended = resources
    .filter((resource) => resource.available && typeof resource.connection?.quit === 'function')
    .map(
      ({ connection }) =>
        new Promise<void>((resolve) => {
          connection?.once?.('end', resolve)
          connection?.quit?.()
        }),
    )
  if (ended.length === 0) return
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, QUIT_WAIT_MS)
  })
  await Promise.race([Promise.all(ended), bound])
  clearTimeout(timer)
}

/** Sends through SMTP with a pooled nodemailer transport (connections are reused between sends). */
export function createSmtpTransport(options: SmtpTransportOptions): SmtpTransport {
  const config = parseOptions(optionsSchema, options, 'createSmtpTransport')
  const defaultFrom = config.from !== undefined ? (parseAddress(config.from) as Address) : undefined
  const owned = config.transporter === undefined
  const ehloName = config.options?.name === undefined ? defaultEhloName(defaultFrom) : undefined
  // `url` settings win over these (nodemailer merges them last), `?name=` included.
  const defaults = { pool: true as const, ...(ehloName !== undefined && { name: ehloName }) }
  const transporter: Transporter =
    config.transporter ??
    (config.url !== undefined
      ? createTransport({ ...defaults, url: config.url } as SMTPPoolOptions & { pool: true })
      : createTransport({ ...defaults, ...config.options } as SMTPPoolOptions & { pool: true }))

  return {
    name: config.name,
    transporter,

    async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
      const from = senderOf(message, defaultFrom, PREFIX)
      try {
        const info = await transporter.sendMail({
          ...toMailOptions(message, { from }, MIME_FUNCS),
          signal: context.signal,
        })
        const rejected = ((info.rejected ?? []) as (string | { address: string })[]).map((address) =>
          typeof address === 'string' ? address : address.address,
        )
        return { messageId: String(info.messageId), ...(rejected.length > 0 && { rejected }) }
      } catch (error) {
        throw toTransportError(error, context.signal)
      }
    },

    async verify() {
      try {
        await transporter.verify()
      } catch (error) {
        throw toTransportError(error, undefined)
      }
    },

    async close() {
      if (!owned) return
      await quitIdle(transporter)
      transporter.close()
    },
  }
}
