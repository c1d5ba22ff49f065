import { MailstreamError } from '../errors.js'
import type { RenderContext } from '../transport.js'
import { templateError } from './errors.js'
import { SAFE_URL_RE } from './options.js'
import type { UnsubscribeOptions } from './types.js'
import { createUnsubscribeToken, listUnsubscribeHeaders, unsubscribeUrl, unsubscribeUrlPrefix } from './unsubscribe.js'

export interface UnsubscribeLinks {
  /**
   * Sets `view.unsubscribeUrl` (the one given in the data, or a signed link for the recipient) and
   * returns the `List-Unsubscribe` headers for it; undefined when there is no link to give.
   */
  apply(view: Record<string, unknown>, context: RenderContext, template: string): Record<string, string> | undefined
}

/**
 * Signed unsubscribe links for the renderer's `unsubscribe` option. Without that option, only a link
 * passed in the data is used. Throws `E_CONFIG` when there is no page for the links to open.
 */
export function createUnsubscribeLinks(
  unsubscribe: UnsubscribeOptions | undefined,
  frontendUrl: string | undefined,
): UnsubscribeLinks {
  let base: string | undefined
  if (unsubscribe) {
    base = unsubscribe.url ?? (frontendUrl ? `${frontendUrl.replace(/\/+$/, '')}/unsubscribe` : undefined)
    if (!base) {
      throw new MailstreamError(
        'E_CONFIG',
        'createTemplateRenderer: unsubscribe.url: give the unsubscribe page, or defaults.frontendUrl',
        { field: 'unsubscribe.url' },
      )
    }
  }

  // The signed links' common start, when a token is simply appended to it, and whether such a link
  // is a safe http(s) URL (a token is base64url: it changes nothing there). Known at the first link.
  let signed: { prefix: string; safe: boolean } | undefined
  const signedUrl = (token: string): { url: string; safe: boolean } => {
    if (!signed) {
      const prefix = unsubscribeUrlPrefix(base as string)
      signed = { prefix, safe: prefix !== '' && SAFE_URL_RE.test(`${prefix}x`) }
    }
    if (signed.prefix === '') return { url: unsubscribeUrl(base as string, token), safe: false }
    return { url: signed.prefix + token, safe: signed.safe }
  }

  return {
    apply(view, context, template) {
      const given = view.unsubscribeUrl
      let url = typeof given === 'string' && given !== '' ? given : undefined
      let mailto: string | undefined
      let safe = false
      const email = context.job?.to[0]?.address ?? (typeof view.email === 'string' ? view.email : undefined)
      if (url === undefined && unsubscribe && email) {
        const list = typeof view.list === 'string' && view.list !== '' ? view.list : (unsubscribe.list ?? 'default')
        const expiresAt = unsubscribe.ttlSeconds !== undefined ? Date.now() + unsubscribe.ttlSeconds * 1000 : undefined
        const token = createUnsubscribeToken(
          { email, list, ...(expiresAt !== undefined && { expiresAt }) },
          unsubscribe.secret,
        )
        ;({ url, safe } = signedUrl(token))
        if (unsubscribe.mailto) {
          mailto = `mailto:${unsubscribe.mailto}?subject=${encodeURIComponent(`unsubscribe ${token}`)}`
        }
      }
      if (url === undefined) return undefined
      if (!safe && !SAFE_URL_RE.test(url))
        throw templateError(template, 'unsubscribeUrl must be an http(s) URL', 'unsubscribeUrl')
      view.unsubscribeUrl = url
      return listUnsubscribeHeaders(url, mailto)
    },
  }
}
