import { z } from 'zod'
import { issuesError, MailstreamError } from './errors.js'
import { gcra } from './lua/gcra.js'
import { defineScripts } from './lua/index.js'
import { keyPrefixSchema, parseOptions, redisInputSchema } from './options.js'
import { connectionOptionsShape, createProducerConnection, guardMethods, type RedisInput } from './redis.js'

export interface RateLimiterOptions {
  /** An ioredis client (never closed by the limiter), ioredis options or a redis:// URL. */
  redis: RedisInput
  /** Start of every limiter key: state lives at `<prefix>:<key>`. Default `rate:limit`. */
  prefix?: string
  /**
   * Longest wait for Redis, in ms (10 to 600 000): `consume`, `peek` and `reset` reject with
   * `E_TIMEOUT` when it has passed (a timed-out `consume` may or may not have taken its units);
   * `close()` gives QUIT this long. Default 5000.
   */
  commandTimeoutMs?: number
  /**
   * Called with an `E_REDIS` error when a connection the limiter created (from a URL or options)
   * fails: once per outage, not per reconnection attempt. Default: none.
   */
  onError?: (error: MailstreamError) => void
}

export interface ConsumeOptions {
  /** Units per period. */
  rate: number
  /** Length of the period in ms. Default 1000. */
  periodMs?: number
  /** Units the bucket holds: how many may go at once after a quiet spell. Default `ceil(rate)`. */
  burst?: number
  /**
   * Units this call takes. Default 1; 0 only looks. A cost above `burst` is allowed only when the
   * bucket is full, and the calls after it wait until the excess has been paid back.
   */
  cost?: number
}

export interface RateLimitResult {
  allowed: boolean
  /** Whole units that could still be taken right now. */
  remaining: number
  /** 0 when allowed; otherwise how long until the same cost would be allowed. */
  retryAfterMs: number
  /** How long until the bucket is full again. */
  resetAfterMs: number
}

export interface RateLimiter {
  /**
   * Takes `cost` units from the bucket at `key` when they are there (GCRA, in one Lua call on
   * Redis server time). Over any span of W ms at most `burst + rate * W / periodMs` units are
   * allowed; a refused call takes nothing.
   */
  consume(key: string, options: ConsumeOptions): Promise<RateLimitResult>
  /** The state of a bucket without taking anything (`consume` with cost 0). */
  peek(key: string, options: Omit<ConsumeOptions, 'cost'>): Promise<RateLimitResult>
  /** Forgets a bucket: it is full again. */
  reset(key: string): Promise<void>
  /** Closes the connection if the limiter created it. */
  close(): Promise<void>
}

const optionsSchema = z.strictObject({
  redis: redisInputSchema,
  prefix: keyPrefixSchema('rate:limit'),
  ...connectionOptionsShape,
})

const keySchema = z.string().regex(/^[^\s]{1,512}$/, 'must be 1-512 characters without spaces')

const consumeSchema = z.strictObject({
  rate: z.number().positive().max(1e9),
  periodMs: z
    .number()
    .int()
    .min(1)
    .max(366 * 24 * 3600 * 1000)
    .default(1000),
  burst: z.number().int().min(1).max(1e9).optional(),
  cost: z.number().int().min(0).max(1e9).default(1),
})

// The worker's pacing imports these from here until it imports them from lua/ itself.
export { type GcraParams, type GcraReply, gcra } from './lua/gcra.js'
export { type QuotaReply, rollingQuota } from './lua/quota.js'

export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const config = parseOptions(optionsSchema, options, 'createRateLimiter')
  const connection = createProducerConnection(config, 'rate limiter')
  const { client } = connection
  // Defined through the bounded view: the commands land on the client itself.
  defineScripts(client)
  let closed = false

  function stateKey(key: unknown): string {
    const parsed = keySchema.safeParse(key)
    if (!parsed.success) throw issuesError('E_VALIDATION', parsed.error, 'key')
    return `${config.prefix}:${parsed.data}`
  }

  async function run(key: unknown, input: unknown, cost?: number): Promise<RateLimitResult> {
    if (closed) throw new MailstreamError('E_CLOSED', 'the rate limiter is closed')
    const redisKey = stateKey(key)
    const parsed = consumeSchema.safeParse(cost === undefined ? input : { ...(input as object), cost })
    if (!parsed.success) throw issuesError('E_VALIDATION', parsed.error, 'options')
    const { rate, periodMs, burst, cost: units } = parsed.data
    const { allowed, remaining, retryAfterMs, resetAfterMs } = await gcra(client, redisKey, {
      intervalMs: periodMs / rate,
      burst: burst ?? Math.max(1, Math.ceil(rate)),
      cost: units,
      mode: 'take',
    })
    return { allowed, remaining, retryAfterMs, resetAfterMs }
  }

  const methods: Omit<RateLimiter, 'close'> = {
    consume: (key, consumeOptions) => run(key, consumeOptions),
    peek: (key, peekOptions) => run(key, peekOptions, 0),
    async reset(key) {
      if (closed) throw new MailstreamError('E_CLOSED', 'the rate limiter is closed')
      await client.del(stateKey(key))
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
