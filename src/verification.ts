import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto'
import { z } from 'zod'
import { MailstreamError, RateLimitError } from './errors.js'
import { addressKey, type EmailJobInput } from './job.js'
import { inboxLimitKey, ipLimitKey } from './limit-keys.js'
import { defineScripts } from './lua/index.js'
import { slidingWindow } from './lua/sliding-window.js'
import { verifyAttempt } from './lua/verify-attempt.js'
import { verifyUse } from './lua/verify-use.js'
import { keyPrefixSchema, parseOptions, redisInputSchema } from './options.js'
import type { EmailQueue } from './queue/index.js'
import { isEmailQueue, queueInternals } from './queue/internals.js'
import {
  boundedClient,
  connectionOptionsShape,
  createOutageReporter,
  type ErrorReport,
  guardMethods,
  quit,
  type RedisInput,
  resolveRedis,
  toRedisError,
} from './redis.js'

export interface VerificationLimit {
  /** Codes per window. */
  max: number
  windowSeconds: number
}

/** What `build` receives to shape the verification email. */
export interface VerificationContext {
  /** The address, trimmed and lower-cased. */
  email: string
  code: string
  /** Epoch ms. */
  expiresAt: number
  expiresInMinutes: number
  locale?: string
  ip?: string
}

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
  /** Start of every key: codes at `<keyPrefix>:code:<email>`. Default `verification`. */
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
  /** The client's IP address, for `perIp` (trimmed; at most 100 characters without spaces). */
  ip?: string
  /** Language of the email (`ko`, `en`). */
  locale?: string
}

export interface IssueResult {
  /** Epoch ms when the code stops working. */
  expiresAt: number
  /** The id of the email job. */
  id: string
}

export type VerifyResult = { ok: true } | { ok: false; reason: 'invalid' | 'expired' | 'too_many_attempts' }

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
  keyPrefix: keyPrefixSchema('verification'),
  build: z
    .custom<NonNullable<VerificationCodesOptions['build']>>((value) => typeof value === 'function', {
      message: 'must be a function',
    })
    .optional(),
  ...connectionOptionsShape,
})

const normaliseEmail = (email: unknown): string => addressKey(email, 'email')

export function createVerificationCodes(options: VerificationCodesOptions): VerificationCodes {
  const config = parseOptions(optionsSchema, options, 'createVerificationCodes')
  const redisInput = config.redis ?? (isEmailQueue(config.queue) ? queueInternals(config.queue).redis : undefined)
  if (redisInput === undefined) {
    throw new MailstreamError('E_CONFIG', 'createVerificationCodes: redis: give a client, or a queue that has one', {
      field: 'redis',
    })
  }
  const { client: given, owned } = resolveRedis(redisInput)
  defineScripts(given)
  const client = boundedClient(given, config.commandTimeoutMs)
  const reporter = createOutageReporter(config.onError as ErrorReport | undefined, 'verification codes: Redis')
  const unwatch = owned ? reporter.watch(given) : () => {}
  const secret = typeof config.secret === 'string' ? Buffer.from(config.secret, 'utf8') : Buffer.from(config.secret)
  const keys = {
    code: (email: string) => `${config.keyPrefix}:code:${email}`,
    byEmail: (email: string) => `${config.keyPrefix}:issued:email:${inboxLimitKey(email)}`,
    byIp: (ip: string) => `${config.keyPrefix}:issued:ip:${ipLimitKey(ip)}`,
  }
  let closed = false

  function assertOpen(): void {
    if (closed) throw new MailstreamError('E_CLOSED', 'the verification codes helper is closed')
  }

  /** The code is bound to its address, so a code for one address never verifies another. */
  function digest(email: string, code: string): Buffer {
    return createHmac('sha256', secret).update(`${email}\n${code}`).digest()
  }

  function newCode(): string {
    return String(randomInt(0, 10 ** config.length)).padStart(config.length, '0')
  }

  /** Records one issue in an exact sliding window; resolves the member to undo it, or throws. */
  async function take(key: string, limit: VerificationLimit, what: 'email' | 'ip'): Promise<string> {
    const member = `${Date.now()}:${randomBytes(6).toString('hex')}`
    const { allowed, retryAfterMs } = await slidingWindow(client, key, {
      max: limit.max,
      windowMs: limit.windowSeconds * 1000,
      member,
    })
    if (!allowed) {
      const seconds = Math.ceil(retryAfterMs / 1000)
      throw new RateLimitError(
        `too many verification codes for this ${what === 'email' ? 'address' : 'IP address'}; try again in ${seconds} s`,
        retryAfterMs,
        { field: what },
      )
    }
    return member
  }

  const methods: Pick<VerificationCodes, 'issue' | 'verify'> = {
    async issue(email, { ip: givenIp, locale } = {}) {
      assertOpen()
      const address = normaliseEmail(email)
      const ip = typeof givenIp === 'string' ? givenIp.trim() : givenIp
      if (ip !== undefined && (typeof ip !== 'string' || !/^[^\s]{1,100}$/.test(ip))) {
        throw new MailstreamError('E_VALIDATION', 'ip: must be 1-100 characters without spaces', { field: 'ip' })
      }
      const emailMember = await take(keys.byEmail(address), config.perEmail, 'email')
      if (config.perIp && ip !== undefined) {
        try {
          await take(keys.byIp(ip), config.perIp, 'ip')
        } catch (error) {
          // Refused by IP: this request does not count against the address either.
          await client.zrem(keys.byEmail(address), emailMember)
          throw error
        }
      }

      const code = newCode()
      const expiresAt = Date.now() + config.ttlSeconds * 1000
      const expiresInMinutes = Math.ceil(config.ttlSeconds / 60)
      const context: VerificationContext = {
        email: address,
        code,
        expiresAt,
        expiresInMinutes,
        ...(locale !== undefined && { locale }),
        ...(ip !== undefined && { ip }),
      }
      const job: EmailJobInput = {
        type: 'verification-code',
        to: address,
        template: 'verification-code',
        data: { code, expiresInMinutes },
        priority: 'high',
        ...(locale !== undefined && { locale }),
      }
      const overrides = config.build?.(context) ?? {}
      Object.assign(job, overrides)
      if (!('template' in overrides) && (overrides.html !== undefined || overrides.text !== undefined)) {
        delete job.template
      }

      // Only the HMAC is stored; a new code replaces the old one and its attempts.
      const key = keys.code(address)
      const stored = await client
        .multi()
        .del(key)
        .hset(key, 'hash', digest(address, code).toString('hex'), 'attempts', 0, 'expiresAt', expiresAt)
        .pexpireat(key, expiresAt)
        .exec()
      const failed = stored?.find(([error]) => error)?.[0]
      if (failed) throw toRedisError(failed, 'issue')
      const { id } = await config.queue.enqueue(job)
      return { expiresAt, id }
    },

    async verify(email, code) {
      assertOpen()
      const address = normaliseEmail(email)
      if (typeof code !== 'string') {
        throw new MailstreamError('E_VALIDATION', 'code: must be a string', { field: 'code' })
      }
      const key = keys.code(address)
      const attempt = await verifyAttempt(client, key, { maxAttempts: config.maxAttempts })
      if (attempt.state === 'missing' || attempt.state === 'expired') return { ok: false, reason: 'expired' }
      if (attempt.state === 'locked') return { ok: false, reason: 'too_many_attempts' }
      if (attempt.state !== 'ok') return { ok: false, reason: 'invalid' }
      const expected = Buffer.from(attempt.hash, 'hex')
      const given = digest(address, code.trim())
      if (expected.length === given.length && timingSafeEqual(expected, given)) {
        // Of concurrent verifications with the right code, exactly one uses it.
        const used = await verifyUse(client, key, { hash: attempt.hash })
        return used ? { ok: true } : { ok: false, reason: 'invalid' }
      }
      // The try that reaches the limit says so: the right code will not work any more either.
      return { ok: false, reason: attempt.attempts >= config.maxAttempts ? 'too_many_attempts' : 'invalid' }
    },
  }

  return {
    ...guardMethods(methods, config.commandTimeoutMs),
    async close() {
      if (closed) return
      closed = true
      if (owned) await quit(given, config.commandTimeoutMs)
      unwatch()
    },
  }
}
