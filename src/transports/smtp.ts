import { createTransport, type SMTPPoolOptions, type Transporter } from 'nodemailer'
import { z } from 'zod'
import { TransportError, type TransportErrorOptions } from '../errors.js'
import { type Address, type AddressInput, parseAddress } from '../job.js'
import { parseOptions } from '../options.js'
import { type EmailMessage, type SendContext, type SendResult, senderOf, type Transport } from '../transport.js'
import { toMailOptions } from './mime.js'

export interface SmtpTransportOptions {
  /** `smtp://user:pass@host:587` or `smtps://...:465`: a pooled nodemailer transport is made from it. */
  url?: string
  /** nodemailer SMTP pool options (host, port, auth, maxConnections, ...); `pool` defaults to true. */
  options?: SMTPPoolOptions
  /** Your own nodemailer transporter. Never closed by the transport. */
  transporter?: Transporter
  /** Sender for messages that name none. */
  from?: AddressInput
  /** Default `smtp`. */
  name?: string
}

export interface SmtpTransport extends Transport {
  /** The nodemailer transporter in use. */
  readonly transporter: Transporter
  /** Connects and authenticates once, to check the settings. */
  verify(): Promise<void>
  /** Closes the pool if the transport created it. */
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

interface NodemailerError {
  name?: string
  message?: string
  code?: string
  responseCode?: number
  command?: string
}

/**
 * Reply codes decide: 454 (the throttling reply of SES and others) -> throttle, other 4xx ->
 * later, 5xx -> never. Without a reply: a malformed message -> never; sockets, timeouts and
 * everything else -> later.
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
  if (reply !== undefined && reply >= 400) {
    if (reply === 454) return fail('throttle')
    return fail(reply < 500 ? 'later' : 'never')
  }
  if (smtp.code === 'EMESSAGE' || smtp.code === 'ECONFIG' || (smtp.code === 'EENVELOPE' && smtp.command === 'API')) {
    return fail('never')
  }
  return fail('later')
}

/** Sends through SMTP with a pooled nodemailer transport (connections are reused between sends). */
export function createSmtpTransport(options: SmtpTransportOptions): SmtpTransport {
  const config = parseOptions(optionsSchema, options, 'createSmtpTransport')
  const defaultFrom = config.from !== undefined ? (parseAddress(config.from) as Address) : undefined
  const owned = config.transporter === undefined
  const transporter: Transporter =
    config.transporter ??
    (config.url !== undefined
      ? createTransport({ url: config.url, pool: true } as SMTPPoolOptions & { pool: true })
      : createTransport({ pool: true, ...config.options } as SMTPPoolOptions & { pool: true }))

  return {
    name: config.name,
    transporter,

    async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
      const from = senderOf(message, defaultFrom, PREFIX)
      try {
        const info = await transporter.sendMail({ ...toMailOptions(message, { from }), signal: context.signal })
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
      if (owned) transporter.close()
    },
  }
}
