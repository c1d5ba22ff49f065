import { Resolver } from 'node:dns/promises'
import type { RedisClient } from '../redis.js'
import { providerOfDomain } from './classify.js'

/**
 * The mailbox provider of a company domain by its MX hosts (a domain hosted by Google Workspace
 * is `gmail`, by Naver Works `naver`), for domains the built-in map does not know. Each answer is
 * cached in Redis, so that every producer classifies a domain alike, with a TTL; a lookup that
 * fails or times out counts as `other`, cached briefly.
 */

/** Looks up a domain's MX records, as `dns.promises.resolveMx` does. */
export type ResolveMx = (domain: string) => Promise<readonly { exchange: string; priority: number }[]>

/** Providers by the host names of their MX servers (lower case, without the final dot). */
const MX_HOSTS: readonly [RegExp, string][] = [
  [/(?:^|\.)(?:google\.com|googlemail\.com)$/, 'gmail'],
  [/(?:^|\.)naver\.com$/, 'naver'],
  [/(?:^|\.)(?:daum\.net|hanmail\.net|kakao\.com|kakaocorp\.com)$/, 'kakao'],
  [/(?:^|\.)outlook\.com$/, 'outlook'],
  [/(?:^|\.)(?:icloud\.com|me\.com)$/, 'icloud'],
  [/(?:^|\.)yahoodns\.net$/, 'yahoo'],
]

/** The provider of the most preferred MX host that names one; `other` when none does. */
export function providerOfMxHosts(records: readonly { exchange: string; priority: number }[]): string {
  const sorted = [...records].sort((a, b) => a.priority - b.priority)
  for (const { exchange } of sorted) {
    const host = String(exchange).toLowerCase().replace(/\.$/, '')
    for (const [pattern, provider] of MX_HOSTS) if (pattern.test(host)) return provider
  }
  return 'other'
}

export interface MxOptions {
  /** Default: `dns.promises` with one try of `timeoutMs`. Tests inject their own. */
  resolve?: ResolveMx
  /** One lookup's bound. Default 2000 ms. */
  timeoutMs?: number
  /** How long an answer is cached. Default 86 400 s (a day). */
  ttlSeconds?: number
  /** How long a failed or timed-out lookup (`other`) is cached. Default 300 s. */
  failureTtlSeconds?: number
  /** At most this many domains are looked up per call; the rest count as `other`, uncached. Default 20. */
  maxLookups?: number
}

/** A classifier of the domains of a recipient list by their MX hosts, cached under `cacheKey(domain)`. */
export function createMxClassifier(redis: RedisClient, cacheKey: (domain: string) => string, options: MxOptions = {}) {
  const timeoutMs = options.timeoutMs ?? 2000
  const ttl = options.ttlSeconds ?? 86_400
  const failureTtl = options.failureTtlSeconds ?? 300
  const maxLookups = options.maxLookups ?? 20
  let resolve = options.resolve
  if (!resolve) {
    const resolver = new Resolver({ timeout: timeoutMs, tries: 1 })
    resolve = (domain) => resolver.resolveMx(domain)
  }
  const lookup = resolve
  /** Lookups in flight in this process: one per domain, however many jobs name it. */
  const inFlight = new Map<string, Promise<string>>()

  /** The provider of one domain by DNS, bounded by `timeoutMs`; cached in Redis either way. */
  function resolveOne(domain: string): Promise<string> {
    const running = inFlight.get(domain)
    if (running) return running
    const promise = (async () => {
      let timer: NodeJS.Timeout | undefined
      let provider = 'other'
      let failed = false
      try {
        const records = await Promise.race([
          lookup(domain),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('MX lookup timed out')), timeoutMs)
          }),
        ])
        provider = providerOfMxHosts(records)
      } catch {
        failed = true
      } finally {
        clearTimeout(timer)
      }
      try {
        await redis.set(cacheKey(domain), provider, 'EX', failed ? failureTtl : ttl)
      } catch {
        // Not cached: the next job of this domain looks it up again.
      }
      return provider
    })().finally(() => inFlight.delete(domain))
    inFlight.set(domain, promise)
    return promise
  }

  return {
    /**
     * The providers of the domains of `rcpt` (lower-case, ','-joined) that the built-in map does not
     * know and whose MX hosts name one: domain -> provider, for `providersOfList(rcpt, extra)`.
     */
    async classify(rcpt: string): Promise<Map<string, string>> {
      const domains = new Set<string>()
      for (const address of rcpt.split(',')) {
        const domain = address.slice(address.lastIndexOf('@') + 1)
        if (domain && providerOfDomain(domain) === 'other') domains.add(domain)
      }
      const extra = new Map<string, string>()
      if (domains.size === 0) return extra
      const list = [...domains]
      const cached = await redis.mget(...list.map(cacheKey))
      const missing: string[] = []
      list.forEach((domain, index) => {
        const provider = cached[index]
        if (provider === null || provider === undefined) missing.push(domain)
        else if (provider !== 'other') extra.set(domain, provider)
      })
      const found = await Promise.all(missing.slice(0, maxLookups).map(resolveOne))
      found.forEach((provider, index) => {
        if (provider !== 'other') extra.set(missing[index] as string, provider)
      })
      return extra
    },
  }
}

export type MxClassifier = ReturnType<typeof createMxClassifier>
