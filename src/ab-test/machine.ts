// Opens made by machines rather than readers: counted by SES, left out of A/B decisions.

/**
 * Programs that fetch a message's images without anyone reading it: crawlers, link and security
 * scanners, HTTP libraries, headless browsers.
 */
const MACHINE_AGENT_RE =
  /bot\b|bot\/|crawler|spider|scanner|headlesschrome|python-requests|python-urllib|curl\/|wget\/|go-http-client|java\/|okhttp|barracuda|mimecast|proofpoint/i

/**
 * True when an SES open event's user agent shows a machine: none at all; exactly `Mozilla/5.0`,
 * which is what Apple Mail Privacy Protection sends when it fetches every message's images ahead
 * of time; or a crawler, scanner or HTTP library. Gmail's and Yahoo's image proxies fetch images
 * when the reader opens the message, so their opens count as human.
 */
export function isMachineOpen(userAgent: string | undefined): boolean {
  const agent = userAgent?.trim() ?? ''
  if (agent === '' || agent === 'Mozilla/5.0') return true
  return MACHINE_AGENT_RE.test(agent)
}
