import { createHmac, randomInt, timingSafeEqual } from 'node:crypto'
import { verifyAttempt } from '../lua/verify-attempt.js'
import { verifyUse } from '../lua/verify-use.js'
import { type RedisClient, toRedisError } from '../redis.js'

export type VerifyResult = { ok: true } | { ok: false; reason: 'invalid' | 'expired' | 'too_many_attempts' }

export interface CodeStoreConfig {
  keyPrefix: string
  /** HMAC-SHA256 key of the stored codes. */
  secret: Buffer
  /** Digits in a code. */
  length: number
  maxAttempts: number
}

export interface CodeStore {
  /** A new random code of `length` digits. */
  newCode(): string
  /** Stores the code's HMAC for `address` until `expiresAt` (epoch ms), replacing any code and its attempts. */
  save(address: string, code: string, expiresAt: number): Promise<void>
  /** Checks `code` (trimmed) for `address`, counting a wrong try; a right code works once. */
  check(address: string, code: string): Promise<VerifyResult>
}

/** The codes at `<keyPrefix>:code:<email>`: only their HMACs reach Redis. */
export function createCodeStore(client: RedisClient, config: CodeStoreConfig): CodeStore {
  const codeKey = (email: string) => `${config.keyPrefix}:code:${email}`

  /** The code is bound to its address, so a code for one address never verifies another. */
  function digest(email: string, code: string): Buffer {
    return createHmac('sha256', config.secret).update(`${email}\n${code}`).digest()
  }

  return {
    newCode() {
      return String(randomInt(0, 10 ** config.length)).padStart(config.length, '0')
    },

    async save(address, code, expiresAt) {
      const key = codeKey(address)
      const stored = await client
        .multi()
        .del(key)
        .hset(key, 'hash', digest(address, code).toString('hex'), 'attempts', 0, 'expiresAt', expiresAt)
        .pexpireat(key, expiresAt)
        .exec()
      const failed = stored?.find(([error]) => error)?.[0]
      if (failed) throw toRedisError(failed, 'issue')
    },

    async check(address, code) {
      const key = codeKey(address)
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
}
