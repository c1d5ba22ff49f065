import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { describeError, MailstreamError } from '../errors.js'
import { parseOptions } from '../options.js'
import type { BatchState } from '../queue/batches.js'
import type { EmailQueue } from '../queue/index.js'
import {
  createThroughputMeter,
  type DashboardStats,
  discoverBatches,
  listRetrying,
  summariseDeadLetter,
} from './data.js'
import { createLiveHub } from './events.js'
import { handleNodeRequest, type NextFunction } from './node.js'
import { renderPage, SCRIPT, STYLESHEET } from './page.js'

export type { DashboardStats, DeadLetterSummary, RetryingJob, Throughput } from './data.js'
export type { NextFunction } from './node.js'

export interface DashboardOptions {
  /** The queue to show (`createEmailQueue`). The dashboard never closes it. */
  queue: EmailQueue
  /**
   * Where the dashboard is mounted (`/ops/mail`). Optional: behind Express it is read from
   * `req.baseUrl`, and without it the dashboard recognises its routes by how paths end.
   */
  basePath?: string
  /** Heading and window title. Default `mailstream`. */
  title?: string
  /** Show everything, change nothing: no Retry or Purge buttons, and every POST is refused (403). */
  readOnly?: boolean
  /**
   * Called with every request before it is served; `false` (or a rejection) answers 403. The
   * Node handler passes its `IncomingMessage` too (with Express: `req.user`, `req.session`, ...).
   */
  authorize?: (request: Request, req?: IncomingMessage) => boolean | Promise<boolean>
  /**
   * Which batches to show: a list of ids, or a function that returns one (for example the
   * newsletter issues of the last week from your database). Default: discover recent ones.
   */
  batches?: readonly string[] | (() => readonly string[] | Promise<readonly string[]>)
  /** Without `batches`: how many of the most recent batches to discover. Default 10; 0 shows none. */
  recentBatches?: number
  /** How often open pages get fresh stats, ms. Default 1000. */
  statsIntervalMs?: number
}

export interface Dashboard {
  /** The Node handler: `app.use('/ops/mail', dashboard)` (Express) or `http.createServer(dashboard)`. */
  (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void
  /** The same handler, for frameworks that want a named property. */
  readonly handler: (req: IncomingMessage, res: ServerResponse, next?: NextFunction) => void
  /** Web-standard handler: `app.all('/ops/mail/*', (c) => dashboard.fetch(c.req.raw))` (Hono, Bun, Deno). */
  readonly fetch: (request: Request) => Promise<Response>
  /** Pages connected to the live event stream right now. */
  readonly connections: number
  /** Ends every event stream and stops its timers and subscriptions. Leaves the queue open. */
  close(): Promise<void>
}

const BATCH_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/
const fn = <T>() => z.custom<T>((value) => typeof value === 'function', { message: 'must be a function' })

const optionsSchema = z.strictObject({
  queue: z.custom<EmailQueue>(
    (value) =>
      typeof value === 'object' &&
      value !== null &&
      typeof (value as EmailQueue).stats === 'function' &&
      typeof (value as EmailQueue).getBatch === 'function' &&
      typeof (value as EmailQueue).onProgress === 'function' &&
      typeof (value as EmailQueue).deadLetters === 'object' &&
      typeof (value as EmailQueue).keys === 'object' &&
      typeof (value as EmailQueue).redis === 'object',
    { message: 'must be an email queue (createEmailQueue)' },
  ),
  basePath: z
    .string()
    .regex(/^(\/[^/?#\s]+)*\/?$/, "must be a path such as '/ops/mail'")
    .transform((path) => path.replace(/\/+$/, ''))
    .optional(),
  title: z.string().min(1).max(200).default('mailstream'),
  readOnly: z.boolean().default(false),
  authorize: fn<NonNullable<DashboardOptions['authorize']>>().optional(),
  batches: z
    .union([
      z.array(z.string().regex(BATCH_ID_RE, 'must be batch ids')).max(100),
      fn<() => readonly string[] | Promise<readonly string[]>>(),
    ])
    .optional(),
  recentBatches: z.number().int().min(0).max(100).default(10),
  statsIntervalMs: z.number().int().min(100).max(60_000).default(1000),
})

/** The discovered batch list is read again at most this often (SCAN is not free). */
const DISCOVERY_TTL_MS = 15_000
/** Keys SCAN may examine per discovery, over all nodes. */
const DISCOVERY_MAX_KEYS = 200_000
const BATCH_INTERVAL_MS = 5_000
const MAX_LIST = 500

const BASE_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-resource-policy': 'same-origin',
}
const API_CSP = "default-src 'none'; frame-ancestors 'none'"
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/** The header the page sends with every POST; a cross-site form or image cannot send it. */
export const CSRF_HEADER = 'x-mailstream-csrf'

type RouteName =
  | 'page'
  | 'script'
  | 'style'
  | 'stats'
  | 'dead'
  | 'retry'
  | 'retryAll'
  | 'purge'
  | 'failures'
  | 'batches'
  | 'batch'
  | 'events'

const ROUTES: readonly { name: RouteName; method: 'GET' | 'POST'; path: string }[] = [
  { name: 'page', method: 'GET', path: '' },
  { name: 'script', method: 'GET', path: 'app\\.js' },
  { name: 'style', method: 'GET', path: 'app\\.css' },
  { name: 'stats', method: 'GET', path: 'api/stats' },
  { name: 'dead', method: 'GET', path: 'api/dead' },
  { name: 'retryAll', method: 'POST', path: 'api/dead/retry-all' },
  { name: 'purge', method: 'POST', path: 'api/dead/purge' },
  { name: 'retry', method: 'POST', path: 'api/dead/([^/]+)/retry' },
  { name: 'failures', method: 'GET', path: 'api/failures' },
  { name: 'batches', method: 'GET', path: 'api/batches' },
  { name: 'batch', method: 'GET', path: 'api/batches/([^/]+)' },
  { name: 'events', method: 'GET', path: 'api/events' },
]
const RELATIVE = ROUTES.map((route) => ({ route, re: new RegExp(`^${route.path}$`) }))
const TRAILING = ROUTES.map((route) => ({ route, re: new RegExp(`^(.*)/${route.path}$`) }))

interface Match {
  name: RouteName
  method: 'GET' | 'POST'
  param?: string
}

/** Where a request goes: a route, a redirect to the base path with its slash, or nothing of ours. */
type Resolved = { kind: 'route'; match: Match } | { kind: 'redirect'; location: string } | { kind: 'none' }

/**
 * `base` known (option, or Express's `req.baseUrl`): the path must lie under it. Not known: the
 * route is recognised by how the path ends, so the page works under any prefix it is given.
 */
function resolve(pathname: string, base: string | undefined, lenient: boolean): Resolved {
  const slashRedirect = (): Resolved => ({ kind: 'redirect', location: `${pathname.split('/').pop() ?? ''}/` })
  let found: { route: (typeof ROUTES)[number]; param: string | undefined } | undefined
  if (base !== undefined) {
    if (base !== '' && pathname === base) return slashRedirect()
    if (!pathname.startsWith(`${base}/`)) return { kind: 'none' }
    const rest = pathname.slice(base.length + 1)
    for (const { route, re } of RELATIVE) {
      const groups = re.exec(rest)
      if (groups) {
        found = { route, param: groups[1] }
        break
      }
    }
  } else {
    for (const { route, re } of TRAILING) {
      const groups = re.exec(pathname)
      if (groups) {
        found = { route, param: groups[2] }
        break
      }
    }
  }
  if (found) {
    const match: Match = { name: found.route.name, method: found.route.method }
    if (found.param !== undefined) {
      try {
        match.param = decodeURIComponent(found.param)
      } catch {
        match.param = found.param
      }
    }
    return { kind: 'route', match }
  }
  // The base path without its slash: the page's relative URLs need the slash, so redirect.
  const last = pathname.split('/').pop() ?? ''
  if (lenient && last !== '' && !last.includes('.') && !pathname.includes('/api/')) return slashRedirect()
  return { kind: 'none' }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...BASE_HEADERS,
      'content-security-policy': API_CSP,
      'content-type': 'application/json; charset=utf-8',
      ...headers,
    },
  })
}

const problem = (status: number, code: string, message: string, headers?: Record<string, string>) =>
  json(status, { error: { code, message } }, headers)

function errorResponse(error: unknown): Response {
  if (error instanceof MailstreamError) {
    const status =
      error.code === 'E_VALIDATION' ? 400 : error.code === 'E_NOT_FOUND' ? 404 : error.code === 'E_CLOSED' ? 503 : 500
    return problem(status, error.code, error.message)
  }
  return problem(500, 'E_INTERNAL', describeError(error))
}

function countParam(url: URL, fallback: number): number {
  const raw = url.searchParams.get('count')
  if (raw === null) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1 || value > MAX_LIST) {
    throw new MailstreamError('E_VALIDATION', `count: must be an integer from 1 to ${MAX_LIST}`, { field: 'count' })
  }
  return value
}

/**
 * The operations dashboard of a queue: one HTML page and a JSON API under the same base path,
 * with live stats and batch progress through server-sent events. Protect it (`authorize`, or
 * your own authentication in front of it): it shows recipients and can resend dead letters.
 */
export function createDashboard(options: DashboardOptions): Dashboard {
  const config = parseOptions(optionsSchema, options, 'createDashboard')
  const queue = config.queue
  const page = renderPage({ title: config.title, readOnly: config.readOnly })
  const throughput = createThroughputMeter()
  let discovery: { at: number; ids: Promise<string[]> } | undefined
  let closed = false

  async function readStats(): Promise<DashboardStats> {
    const stats = await queue.stats()
    const at = Date.now()
    const streams = Object.values(stats.streams)
    return {
      ...stats,
      at,
      waiting: streams.reduce((sum, stream) => sum + stream.waiting, 0),
      inFlight: streams.reduce((sum, stream) => sum + stream.pending, 0),
      throughput: throughput(at, stats.totals),
    }
  }

  async function batchIds(): Promise<string[]> {
    const source = config.batches
    if (Array.isArray(source)) return [...source]
    if (typeof source === 'function') {
      const ids = await source()
      return [...new Set([...ids].filter((id) => typeof id === 'string' && BATCH_ID_RE.test(id)))].slice(0, 100)
    }
    if (config.recentBatches === 0) return []
    const now = Date.now()
    if (!discovery || now - discovery.at > DISCOVERY_TTL_MS) {
      const ids = discoverBatches(queue.redis, queue.keys, config.recentBatches, DISCOVERY_MAX_KEYS)
      discovery = { at: now, ids }
      ids.catch(() => {
        if (discovery?.ids === ids) discovery = undefined
      })
    }
    return discovery.ids
  }

  async function readBatches(): Promise<BatchState[]> {
    const ids = await batchIds()
    const states = await Promise.all(ids.map((id) => queue.getBatch(id)))
    return states.filter((state): state is BatchState => state !== null)
  }

  const hub = createLiveHub(
    {
      stats: readStats,
      batches: readBatches,
      getBatch: (batchId) => queue.getBatch(batchId),
      onProgress: (batchId, listener) => queue.onProgress(batchId, listener),
    },
    {
      statsIntervalMs: config.statsIntervalMs,
      batchIntervalMs: BATCH_INTERVAL_MS,
      headers: {
        ...BASE_HEADERS,
        'content-security-policy': API_CSP,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store, no-transform',
        // Proxies such as nginx must pass events on at once.
        'x-accel-buffering': 'no',
      },
    },
  )

  async function serve(match: Match, request: Request, url: URL): Promise<Response> {
    switch (match.name) {
      case 'page':
        return new Response(page, {
          headers: { ...BASE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP },
        })
      case 'script':
        return new Response(SCRIPT, {
          headers: { ...BASE_HEADERS, 'content-type': 'text/javascript; charset=utf-8' },
        })
      case 'style':
        return new Response(STYLESHEET, { headers: { ...BASE_HEADERS, 'content-type': 'text/css; charset=utf-8' } })
      case 'stats':
        return json(200, await readStats())
      case 'dead': {
        const count = countParam(url, 50)
        const [letters, total] = await Promise.all([
          queue.deadLetters.list({ count }),
          queue.redis.xlen(queue.keys.dead),
        ])
        return json(200, { total, items: letters.map(summariseDeadLetter) })
      }
      case 'retry': {
        const retried = await queue.deadLetters.retry(match.param ?? '')
        if (retried === 0) return problem(404, 'E_NOT_FOUND', `no dead letter for ${match.param}`)
        return json(200, { retried })
      }
      case 'retryAll':
        return json(200, { retried: await queue.deadLetters.retry({ all: true }) })
      case 'purge':
        return json(200, { purged: await queue.deadLetters.purge() })
      case 'failures':
        return json(200, { items: await listRetrying(queue.redis, queue.keys, countParam(url, 50)) })
      case 'batches':
        return json(200, { items: await readBatches() })
      case 'batch': {
        const id = match.param ?? ''
        const [state, stats] = await Promise.all([queue.getBatch(id), queue.batchStats(id)])
        if (!state) return problem(404, 'E_NOT_FOUND', `no batch ${id}`)
        return json(200, { ...state, totals: stats?.totals, rates: stats?.rates })
      }
      case 'events':
        return hub.connect(request)
    }
  }

  /** Resolves null when the request is not for the dashboard (the Node handler then calls `next`). */
  async function handle(
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
    try {
      if (config.authorize && !(await config.authorize(request, req))) {
        return problem(403, 'E_FORBIDDEN', 'not allowed')
      }
    } catch {
      return problem(403, 'E_FORBIDDEN', 'not allowed')
    }
    if (resolved.kind === 'redirect') {
      return new Response(null, { status: 308, headers: { ...BASE_HEADERS, location: resolved.location + url.search } })
    }
    const { match } = resolved
    const method = request.method.toUpperCase()
    const head = method === 'HEAD' && match.method === 'GET' && match.name !== 'events'
    if (method !== match.method && !head) {
      return problem(405, 'E_METHOD', `use ${match.method}`, {
        allow: match.method === 'GET' ? 'GET, HEAD' : 'POST',
      })
    }
    if (match.method === 'POST') {
      if (config.readOnly) return problem(403, 'E_READ_ONLY', 'the dashboard is read-only')
      // A cross-site page can neither add a custom header without a CORS preflight (never
      // answered here) nor hide that a browser marked the request as coming from another site.
      const site = request.headers.get('sec-fetch-site')
      if (!request.headers.get(CSRF_HEADER) || (site !== null && site !== 'same-origin' && site !== 'none')) {
        return problem(403, 'E_CSRF', `state-changing requests need the ${CSRF_HEADER} header and the same origin`)
      }
    }
    if (closed) return problem(503, 'E_CLOSED', 'the dashboard is closed')
    let response: Response
    try {
      response = await serve(match, request, url)
    } catch (error) {
      response = errorResponse(error)
    }
    return head ? new Response(null, { status: response.status, headers: response.headers }) : response
  }

  async function fetchHandler(request: Request): Promise<Response> {
    return (
      (await handle(request, config.basePath, config.basePath === undefined)) ??
      problem(404, 'E_NOT_FOUND', 'not found')
    )
  }

  const handler = (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void => {
    handleNodeRequest(req, res, next, async (request, mountPath) => {
      const base = config.basePath ?? (mountPath || undefined)
      const response = await handle(request, base, base === undefined && next === undefined, req)
      // With `next` (Express), a path that is not the dashboard's goes on to the next handler.
      return response ?? (next ? null : problem(404, 'E_NOT_FOUND', 'not found'))
    })
  }

  return Object.defineProperties(handler, {
    handler: { value: handler, enumerable: true },
    fetch: { value: fetchHandler, enumerable: true },
    connections: { get: () => hub.connections, enumerable: true },
    close: {
      value: async () => {
        closed = true
        hub.close()
      },
      enumerable: true,
    },
  }) as Dashboard
}
