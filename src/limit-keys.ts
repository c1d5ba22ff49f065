import { isIPv4, isIPv6 } from 'node:net'

/**
 * The client an IP address stands for, as verification codes count it (`perIp`):
 * - IPv4 as it is (`203.0.113.9`), and an IPv4-mapped IPv6 address as its IPv4 (`::ffff:203.0.113.9`,
 *   `::FFFF:cb00:7109` -> `203.0.113.9`), so that a dual-stack server counts one client once;
 * - other IPv6 by its /64 (`2001:db8:1:2::/64`), in any spelling (`::` compression, upper case, a
 *   `%zone` id, `[brackets]`): one host or home gets a whole /64 and can use any address in it;
 * - anything else (not an IP address: `unknown`, `10.0.0.01`) as the trimmed string, so that such
 *   requests share one budget per distinct string instead of escaping the limit.
 */
export function ipLimitKey(ip: string): string {
  const text = ip.trim()
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text
  if (isIPv4(bare)) return bare
  const zone = bare.indexOf('%')
  const address = zone > 0 ? bare.slice(0, zone) : bare
  if (!isIPv6(address)) return text
  const groups = ipv6Groups(address)
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6)
    return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`
}

/** The eight 16-bit groups of a valid IPv6 address (`isIPv6`), `::` expanded, a dotted IPv4 tail converted. */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase()
  const lastColon = text.lastIndexOf(':')
  const tail = text.slice(lastColon + 1)
  if (tail.includes('.')) {
    const [a = 0, b = 0, c = 0, d = 0] = tail.split('.').map(Number)
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const [head = '', rest] = text.split('::')
  const before = head === '' ? [] : head.split(':')
  const after = rest === undefined || rest === '' ? [] : rest.split(':')
  const fill = rest === undefined ? 0 : 8 - before.length - after.length
  return [...before, ...Array<string>(fill).fill('0'), ...after].map((group) => Number.parseInt(group, 16))
}

/**
 * The inbox an address delivers to, as verification codes count it (`perEmail`): lower case,
 * without a `+tag` (`Victim+1@Example.com` -> `victim@example.com`), and for Gmail without dots
 * in the local part and `googlemail.com` as `gmail.com`, since Gmail delivers all of them to one
 * inbox. Only the count uses it: the code goes to, and verifies for, the address as given.
 */
export function inboxLimitKey(email: string): string {
  const address = email.trim().toLowerCase()
  const at = address.lastIndexOf('@')
  if (at < 1) return address
  let local = address.slice(0, at)
  let domain = address.slice(at + 1)
  const plus = local.indexOf('+')
  if (plus > 0) local = local.slice(0, plus)
  if (domain === 'googlemail.com') domain = 'gmail.com'
  if (domain === 'gmail.com') local = local.replaceAll('.', '') || local
  return `${local}@${domain}`
}
