/**
 * Mailbox providers: which company's servers a recipient's mail goes to, so that the worker can pace
 * each of them on its own (docs/rate-limiting.md, "Per-provider pacing"). Pure and synchronous: a
 * recipient costs one `Map` lookup of its domain.
 */

/** The providers mailstream knows by their domains; `other` is every domain it does not know. */
export const PROVIDERS = ['naver', 'kakao', 'gmail', 'nate', 'outlook', 'icloud', 'yahoo', 'other'] as const
export type BuiltInProvider = (typeof PROVIDERS)[number]

/** A provider name as options and jobs give it: lower case, 1-32 characters of a-z 0-9 _ -. */
export const PROVIDER_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,31}$/

/** The built-in domain map: the mailbox domains of each provider. */
export const PROVIDER_DOMAINS: Readonly<Record<Exclude<BuiltInProvider, 'other'>, readonly string[]>> = {
  naver: ['naver.com'],
  kakao: ['daum.net', 'hanmail.net', 'kakao.com'],
  gmail: ['gmail.com', 'googlemail.com'],
  nate: ['nate.com'],
  outlook: ['outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'outlook.kr', 'hotmail.co.kr', 'live.co.kr'],
  icloud: ['icloud.com', 'me.com', 'mac.com'],
  yahoo: ['yahoo.com', 'yahoo.co.kr', 'ymail.com', 'rocketmail.com'],
}

const BUILT_IN = new Map<string, string>()
for (const [provider, domains] of Object.entries(PROVIDER_DOMAINS)) {
  for (const domain of domains) BUILT_IN.set(domain, provider)
}

/**
 * The provider of a lower-case domain by the built-in map, then `extra` (domain -> provider, for a
 * company domain hosted by Gmail, say); `other` when neither knows it.
 */
export function providerOfDomain(domain: string, extra?: ReadonlyMap<string, string>): string {
  return BUILT_IN.get(domain) ?? extra?.get(domain) ?? 'other'
}

/** The provider of one address (any case); `other` for a domain the maps do not know. */
export function providerOfAddress(address: string, extra?: ReadonlyMap<string, string>): string {
  const at = address.lastIndexOf('@')
  return providerOfDomain(address.slice(at + 1).toLowerCase(), extra)
}

/**
 * Recipients per provider of a recipient list as the send stream stores it (lower-case,
 * ','-joined, each address once): `'a@naver.com,b@daum.net,c@hanmail.net'` -> `{ naver: 1, kakao: 2 }`.
 */
export function providersOfList(rcpt: string, extra?: ReadonlyMap<string, string>): Record<string, number> {
  const counts: Record<string, number> = {}
  let start = 0
  while (start < rcpt.length) {
    let end = rcpt.indexOf(',', start)
    if (end < 0) end = rcpt.length
    const at = rcpt.lastIndexOf('@', end - 1)
    if (at >= start) {
      const provider = providerOfDomain(rcpt.slice(at + 1, end), extra)
      counts[provider] = (counts[provider] ?? 0) + 1
    }
    start = end + 1
  }
  return counts
}

/** `"providers":{...}` added to a job's payload (a JSON object that does not have the field yet). */
export function withProviders(payload: string, providers: Record<string, number>): string {
  return `${payload.slice(0, -1)},"providers":${JSON.stringify(providers)}}`
}

/**
 * `withProviders(payload, providersOfList(rcpt))`, with the common case (one recipient) written
 * without an object or JSON.stringify: this runs for every job enqueued.
 */
export function withProvidersOfList(payload: string, rcpt: string): string {
  const at = rcpt.lastIndexOf('@')
  if (at < 0 || rcpt.indexOf(',') >= 0) return withProviders(payload, providersOfList(rcpt))
  // A built-in provider name, or 'other': plain a-z, safe in JSON as it is.
  return `${payload.slice(0, -1)},"providers":{"${providerOfDomain(rcpt.slice(at + 1))}":1}}`
}
