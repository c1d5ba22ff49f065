import type { IncomingMessage, ServerResponse } from 'node:http'
import { z } from 'zod'
import { ID_RE } from '../job.js'
import { parseOptions } from '../options.js'
import type { EmailQueue } from '../queue/index.js'
import { isEmailQueue } from '../queue/internals.js'
import type { FailoverTransport } from '../transports/failover.js'
import { createApi } from './api.js'
import { createAssets } from './assets.js'
import { createLiveHub } from './events.js'
import { type Authorize, createRequestHandler } from './handler.js'
import { EVENT_STREAM_HEADERS, problem } from './http.js'
import { handleNodeRequest, type NextFunction } from './node.js'
import { createDashboardSource, type DashboardSequences } from './source.js'

export type { DashboardStats, DeadLetterSummary, ProviderPacing, RetryingJob, Throughput } from './data.js'
export { CSRF_HEADER } from './handler.js'
export type { NextFunction } from './node.js'
export type { DashboardSequences, SequencePanel } from './source.js'

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
  /**
   * Show a Sequences panel: `runner` is what `createSequences` returned and `ids` the ids of the
   * definitions it was made with (it does not list them itself), for example
   * `{ runner: sequences, ids: [welcome.id, winback.id] }`. Read with `runner.stats(id)` only.
   */
  sequences?: DashboardSequences
  /**
   * Failover transports (`createFailoverTransport`) to show: per member its breaker state and
   * what it sent, failed and took over. Their `stats()` count in this process only, so give the
   * dashboard the transports of a process that runs a worker.
   */
  transports?: readonly Pick<FailoverTransport, 'name' | 'stats'>[]
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

const fn = <T>() => z.custom<T>((value) => typeof value === 'function', { message: 'must be a function' })

const optionsSchema = z.strictObject({
  queue: z.custom<EmailQueue>(isEmailQueue, { message: 'must be an email queue (createEmailQueue)' }),
  basePath: z
    .string()
    .regex(/^(\/[^/?#\s]+)*\/?$/, "must be a path such as '/ops/mail'")
    .transform((path) => path.replace(/\/+$/, ''))
    .optional(),
  title: z.string().min(1).max(200).default('mailstream'),
  readOnly: z.boolean().default(false),
  authorize: fn<Authorize>().optional(),
  batches: z
    .union([
      z.array(z.string().regex(ID_RE, 'must be batch ids')).max(100),
      fn<() => readonly string[] | Promise<readonly string[]>>(),
    ])
    .optional(),
  recentBatches: z.number().int().min(0).max(100).default(10),
  statsIntervalMs: z.number().int().min(100).max(60_000).default(1000),
  sequences: z
    .strictObject({
      runner: z.custom<DashboardSequences['runner']>(
        (value) =>
          typeof value === 'object' && value !== null && typeof (value as { stats?: unknown }).stats === 'function',
        { message: 'must be what createSequences returns' },
      ),
      ids: z
        .array(z.string().regex(ID_RE, 'must be sequence ids'))
        .min(1)
        .max(50)
        .refine((ids) => new Set(ids).size === ids.length, 'an id is given twice'),
    })
    .optional(),
  transports: z
    .array(
      z.custom<Pick<FailoverTransport, 'name' | 'stats'>>(
        (value) =>
          typeof value === 'object' &&
          value !== null &&
          typeof (value as { name?: unknown }).name === 'string' &&
          typeof (value as { stats?: unknown }).stats === 'function',
        { message: 'must be failover transports (createFailoverTransport)' },
      ),
    )
    .max(20)
    .optional(),
})

/** How often open pages get the batch list again. */
const BATCH_INTERVAL_MS = 5_000

/**
 * The operations dashboard of a queue: one HTML page and a JSON API under the same base path,
 * with live stats and batch progress through server-sent events. Protect it (`authorize`, or
 * your own authentication in front of it): it shows recipients and can resend dead letters.
 */
export function createDashboard(options: DashboardOptions): Dashboard {
  const config = parseOptions(optionsSchema, options, 'createDashboard')
  const source = createDashboardSource(config.queue, config)
  const hub = createLiveHub(source, {
    statsIntervalMs: config.statsIntervalMs,
    batchIntervalMs: BATCH_INTERVAL_MS,
    headers: EVENT_STREAM_HEADERS,
  })
  const assets = createAssets({
    title: config.title,
    readOnly: config.readOnly,
    sequences: config.sequences !== undefined,
    transports: config.transports !== undefined,
  })
  let closed = false
  const handle = createRequestHandler({
    authorize: config.authorize,
    readOnly: config.readOnly,
    serve: createApi(source, assets, (request) => hub.connect(request)),
    closed: () => closed,
  })

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
