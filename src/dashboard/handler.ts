import type { IncomingMessage } from 'node:http'
import type { Serve } from './api.js'
import { BASE_HEADERS, errorResponse, problem } from './http.js'
import { type Match, resolve } from './routes.js'

/** The header the page sends with every POST; a cross-site form or image cannot send it. */
export const CSRF_HEADER = 'x-mailstream-csrf'

export type Authorize = (request: Request, req?: IncomingMessage) => boolean | Promise<boolean>

export interface RequestHandlerOptions {
  authorize: Authorize | undefined
  readOnly: boolean
  serve: Serve
  /** True once the dashboard is closed: every route answers 503. */
  closed: () => boolean
}

async function allowed(authorize: Authorize | undefined, request: Request, req?: IncomingMessage): Promise<boolean> {
  if (!authorize) return true
  try {
    return Boolean(await authorize(request, req))
  } catch {
    return false
  }
}

/** The refusal for a method, read-only or cross-site problem with a matched route; undefined to serve it. */
function refusal(match: Match, request: Request, readOnly: boolean, head: boolean): Response | undefined {
  const method = request.method.toUpperCase()
  if (method !== match.method && !head) {
    return problem(405, 'E_METHOD', `use ${match.method}`, { allow: match.method === 'GET' ? 'GET, HEAD' : 'POST' })
  }
  if (match.method !== 'POST') return undefined
  if (readOnly) return problem(403, 'E_READ_ONLY', 'the dashboard is read-only')
  // A cross-site page can neither add a custom header without a CORS preflight (never
  // answered here) nor hide that a browser marked the request as coming from another site.
  const site = request.headers.get('sec-fetch-site')
  if (!request.headers.get(CSRF_HEADER) || (site !== null && site !== 'same-origin' && site !== 'none')) {
    return problem(403, 'E_CSRF', `state-changing requests need the ${CSRF_HEADER} header and the same origin`)
  }
  return undefined
}

/**
 * A request's way through the dashboard: route, authorize, redirect, method and CSRF checks, then
 * the API. Resolves null when the request is not for the dashboard (the Node handler then calls `next`).
 */
export function createRequestHandler(options: RequestHandlerOptions) {
  return async function handle(
    request: Request,
    base: string | undefined,
    lenient: boolean,
    req?: IncomingMessage,
  ): Promise<Response | null> {
    let url: URL
    try {
      url = new URL(request.url)
    } catch {
      return problem(400, 'E_VALIDATION', 'bad request URL')
    }
    const resolved = resolve(url.pathname, base, lenient)
    if (resolved.kind === 'none') return null
    if (!(await allowed(options.authorize, request, req))) return problem(403, 'E_FORBIDDEN', 'not allowed')
    if (resolved.kind === 'redirect') {
      return new Response(null, { status: 308, headers: { ...BASE_HEADERS, location: resolved.location + url.search } })
    }
    const { match } = resolved
    const head = request.method.toUpperCase() === 'HEAD' && match.method === 'GET' && match.name !== 'events'
    const refused = refusal(match, request, options.readOnly, head)
    if (refused) return refused
    if (options.closed()) return problem(503, 'E_CLOSED', 'the dashboard is closed')
    let response: Response
    try {
      response = await options.serve(match, request, url)
    } catch (error) {
      response = errorResponse(error)
    }
    return head ? new Response(null, { status: response.status, headers: response.headers }) : response
  }
}
