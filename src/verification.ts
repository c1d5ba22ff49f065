import { z } from 'zod'
import { MailstreamError } from './errors.js'
import { addressKey, type EmailJobInput } from './job.js'
import { defineScripts } from './lua/index.js'
import { keyPrefixSchema, parseOptions, redisInputSchema } from './options.js'
import type { EmailQueue } from './queue/index.js'
import { isEmailQueue, queueInternals } from './queue/internals.js'
import { connectionOptionsShape, createProducerConnection, guardMethods, type RedisInput } from './redis.js'
import { createCodeStore, type VerifyResult } from './verification/codes.js'
import { createIssueLimits, normaliseIp, type VerificationLimit } from './verification/limits.js'
import { type VerificationContext, verificationJob } from './verification/message.js'

export type { VerificationContext, VerificationLimit, VerifyResult }

export interface VerificationCodesOptions {
  /** Where codes are kept. Default: the queue's client. Never closed when given as a client. */
  redis?: RedisInput
  /** The queue the verification emails go through. */
  queue: Pick<EmailQueue, 'enqueue'>
  /** HMAC-SHA256 key for the stored codes: at least 16 bytes, kept out of Redis. */
  secret: string | Uint8Array
  /** How long a code is valid. Default 600. */
  ttlSeconds?: number
  /** Digits in a code, 4-10. Default 6. */
  length?: number
  /** Wrong tries after which the code is locked. Default 5. */
  maxAttempts?: number
  /**
   * At most `max` codes per inbox in any window of `windowSeconds`. Counted on the address in
   * lower case without its `+tag` (and, for Gmail, without dots), so `a+1@x.com` and `a+2@x.com`
   * share one budget. Default 5 per 3600 s.
   */
  perEmail?: VerificationLimit
  /**
   * At most `max` codes per client IP (given to `issue`) in any window of `windowSeconds`. An
   * IPv4-mapped IPv6 address counts as its IPv4, other IPv6 addresses by their /64, and a string
   * that is not an IP address as itself. Default: no limit.
   */
  perIp?: VerificationLimit
  /**
   * Start of every key: codes at `<keyPrefix>:code:<email>`. Default `<prefix>:verification` for
   * a queue made by `createEmailQueue` (so that one queue prefix per test run or tenant keeps the
   * codes and their limits apart too), and `verification` for any other queue.
   */
  keyPrefix?: string
  /** Overrides fields of the job (for example `subject` and `text` instead of the template). */
  build?: (context: VerificationContext) => Partial<EmailJobInput>
  /**
   * Longest wait for Redis, in ms (10 to 600 000): `issue` and `verify` reject with `E_TIMEOUT`
   * when it has passed (an `issue` that timed out may or may not have stored its code and
   * enqueued its email); `close()` gives QUIT this long. Default 5000.
   */
  commandTimeoutMs?: number
  /**
   * Called with an `E_REDIS` error when a connection the helper created (from a URL or options)
   * fails: once per outage, not per reconnection attempt. Default: none.
   */
  onError?: (error: MailstreamError) => void
}

export interface IssueOptions {
  /**
   * The client's IP address, for `perIp` (trimmed; at most 100 characters without spaces).
   * Undefined is allowed, so that `req.ip` (which may be undefined) can be passed as it is.
   */
  ip?: string | undefined
  /** Language of the email (`ko`, `en`); undefined for the renderer's default. */
  locale?: string | undefined
}

export interface IssueResult {
  /** Epoch ms when the code stops working. */
  expiresAt: number
  /** The id of the email job. */
  id: string
}

export interface VerificationCodes {
  /**
   * Issues a new code for `email` (replacing any earlier one) and enqueues the email that carries
   * it. Throws `RateLimitError` (`E_RATE_LIMITED`, `retryAfterMs`) when the address or IP asked for
   * too many codes. The code itself is never returned.
   */
  issue(email: string, options?: IssueOptions): Promise<IssueResult>
  /**
   * Checks a code: `{ ok: true }` once only. A code verifies only for the address it was sent to
   * (case-insensitively): not for the same inbox without its `+tag` or with another one. `expired` covers a code that timed out and an address
   * that has no code; `invalid` a wrong or already used code; `too_many_attempts` a code locked
   * after `maxAttempts` wrong tries.
   */
  verify(email: string, code: string): Promise<VerifyResult>
  /** Closes the connection if the helper created it. */
  close(): Promise<void>
}

const limitSchema = z.strictObject({
  max: z.number().int().min(1).max(1_000_000),
  windowSeconds: z
    .number()
    .int()
    .min(1)
    .max(366 * 86_400),
})

const optionsSchema = z.strictObject({
  redis: redisInputSchema.optional(),
  queue: z.custom<VerificationCodesOptions['queue']>(
    (value) =>
      typeof value === 'object' && value !== null && typeof (value as { enqueue?: unknown }).enqueue === 'function',
    { message: 'must be an email queue (createEmailQueue)' },
  ),
  secret: z.union([
    z.string().min(16, 'must be at least 16 characters'),
    z.instanceof(Uint8Array).refine((value) => value.length >= 16, { message: 'must be at least 16 bytes' }),
  ]),
  ttlSeconds: z.number().int().min(1).max(86_400).default(600),
  length: z.number().int().min(4).max(10).default(6),
  maxAttempts: z.number().int().min(1).max(100).default(5),
  perEmail: limitSchema.default({ max: 5, windowSeconds: 3600 }),
  perIp: limitSchema.optional(),
  // No default here: it depends on the queue (defaultKeyPrefix).
  keyPrefix: keyPrefixSchema('verification').unwrap().optional(),
  build: z
    .custom<NonNullable<VerificationCodesOptions['build']>>((value) => typeof value === 'function', {
      message: 'must be a function',
    })
    .optional(),
  ...connectionOptionsShape,
})

const normaliseEmail = (email: unknown): string => addressKey(email, 'email')

/** The keys follow the queue's prefix, so that two queues on one Redis share no codes or limits. */
function defaultKeyPrefix(queue: object): string {
  return isEmailQueue(queue) ? `${queueInternals(queue).prefix}:verification` : 'verification'
}

export function createVerificationCodes(options: VerificationCodesOptions): VerificationCodes {
  const config = parseOptions(optionsSchema, options, 'createVerificationCodes')
  const redis = config.redis ?? (isEmailQueue(config.queue) ? queueInternals(config.queue).redis : undefined)
  if (redis === undefined) {
    throw new MailstreamError('E_CONFIG', 'createVerificationCodes: redis: give a client, or a queue that has one', {
      field: 'redis',
    })
  }
  const keyPrefix = config.keyPrefix ?? defaultKeyPrefix(config.queue)
  const connection = createProducerConnection({ ...config, redis }, 'verification codes')
  const { client } = connection
  // Defined through the bounded view: the commands land on the client itself.
  defineScripts(client)
  const limits = createIssueLimits(client, { ...config, keyPrefix })
  const codes = createCodeStore(client, {
    keyPrefix,
    secret: typeof config.secret === 'string' ? Buffer.from(config.secret, 'utf8') : Buffer.from(config.secret),
    length: config.length,
    maxAttempts: config.maxAttempts,
  })
  let closed = false

  function assertOpen(): void {
    if (closed) throw new MailstreamError('E_CLOSED', 'the verification codes helper is closed')
  }

  const methods: Pick<VerificationCodes, 'issue' | 'verify'> = {
    async issue(email, { ip: givenIp, locale } = {}) {
      assertOpen()
      const address = normaliseEmail(email)
      const ip = normaliseIp(givenIp)
      await limits.take(address, ip)
      const code = codes.newCode()
      const expiresAt = Date.now() + config.ttlSeconds * 1000
      const context: VerificationContext = {
        email: address,
        code,
        expiresAt,
        expiresInMinutes: Math.ceil(config.ttlSeconds / 60),
        ...(locale !== undefined && { locale }),
        ...(ip !== undefined && { ip }),
      }
      const job = verificationJob(context, config.build)
      await codes.save(address, code, expiresAt)
      const { id } = await config.queue.enqueue(job)
      return { expiresAt, id }
    },

    async verify(email, code) {
      assertOpen()
      const address = normaliseEmail(email)
      if (typeof code !== 'string') {
        throw new MailstreamError('E_VALIDATION', 'code: must be a string', { field: 'code' })
      }
      return codes.check(address, code)
    },
  }

  return {
    ...guardMethods(methods, config.commandTimeoutMs),
    close() {
      closed = true
      return connection.close()
    },
  }
}
