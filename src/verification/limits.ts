import { randomBytes } from 'node:crypto'
import { MailstreamError, RateLimitError } from '../errors.js'
import { inboxLimitKey, ipLimitKey } from '../limit-keys.js'
import { slidingWindow } from '../lua/sliding-window.js'
import type { RedisClient } from '../redis.js'

export interface VerificationLimit {
  /** Codes per window. */
  max: number
  windowSeconds: number
}

export interface IssueLimitsConfig {
  keyPrefix: string
  perEmail: VerificationLimit
  perIp?: VerificationLimit | undefined
}

export interface IssueLimits {
  /**
   * Counts one code for the inbox of `address` and, with `perIp`, for `ip`; throws
   * `RateLimitError` naming `email` or `ip` when either budget is spent. A refusal counts nowhere.
   */
  take(address: string, ip: string | undefined): Promise<void>
}

/** The client IP given to `issue`, trimmed; throws `E_VALIDATION` when it cannot be a key. */
export function normaliseIp(ip: unknown): string | undefined {
  if (ip === undefined) return undefined
  const trimmed = typeof ip === 'string' ? ip.trim() : ''
  if (!/^[^\s]{1,100}$/.test(trimmed)) {
    throw new MailstreamError('E_VALIDATION', 'ip: must be 1-100 characters without spaces', { field: 'ip' })
  }
  return trimmed
}

/** The per-inbox and per-IP budgets of `issue`, each an exact sliding window in Redis. */
export function createIssueLimits(client: RedisClient, config: IssueLimitsConfig): IssueLimits {
  const byEmail = (email: string) => `${config.keyPrefix}:issued:email:${inboxLimitKey(email)}`
  const byIp = (ip: string) => `${config.keyPrefix}:issued:ip:${ipLimitKey(ip)}`

  /** Records one issue in the window at `key`; resolves the member to undo it, or throws. */
  async function record(key: string, limit: VerificationLimit, what: 'email' | 'ip'): Promise<string> {
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

  return {
    async take(address, ip) {
      const emailMember = await record(byEmail(address), config.perEmail, 'email')
      if (!config.perIp || ip === undefined) return
      try {
        await record(byIp(ip), config.perIp, 'ip')
      } catch (error) {
        // Refused by IP: this request does not count against the address either.
        await client.zrem(byEmail(address), emailMember)
        throw error
      }
    },
  }
}
