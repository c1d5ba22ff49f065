/**
 * The newsletter service on Express, with subscribers, issues and the email log in PostgreSQL.
 * `createExpressApp` builds everything without reading the environment; server.ts wires env
 * and signals.
 */
import { createServer } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { ReadableStream as NodeReadableStream } from 'node:stream/web'
import express, { type NextFunction, type Request, type Response } from 'express'
import { createOutbox, createOutboxRelay, migrationSql, type Outbox } from 'mailstream/pg'
import type { Sequences } from 'mailstream/sequences'
import type pg from 'pg'
import type { Config } from '../shared/config.js'
import { type AppOverrides, connectServices, createHost, type ExampleApp, type Services } from '../shared/host.js'
import { json, type Reply, type StreamReply } from '../shared/routes.js'
import { createPgConsents } from './consents.js'
import { connectDatabase, migrate } from './db.js'
import { createEmailLog } from './email-log.js'
import { createPgStore } from './store.js'
import { createWelcomeSeries, type WelcomeSeriesOverrides } from './welcome.js'

export interface ExpressAppOverrides extends AppOverrides {
  /** PostgreSQL schema for the tables. Default `public`. */
  schema?: string
  /** The welcome series' runner: a fake clock (`now`), a shorter `intervalMs`. */
  sequences?: WelcomeSeriesOverrides
}

export interface ExpressApp extends ExampleApp {
  app: express.Express
  pool: pg.Pool
  /** The Korean welcome series (`welcome-ko`) a confirmed subscriber is enrolled in. */
  sequences: Sequences
}

/** Writes a route's reply: a string body at once, an event stream as it comes. */
function send(res: Response, reply: Reply | StreamReply): void {
  // setHeader, not res.set: Express would add a charset to the metrics' exact content type.
  res.status(reply.status)
  for (const [name, value] of Object.entries(reply.headers)) res.setHeader(name, value)
  if (typeof reply.body === 'string') {
    res.end(reply.body)
    return
  }
  res.flushHeaders()
  // When the client goes away, pipeline destroys the stream, which cancels it: the progress
  // subscription ends with it.
  pipeline(Readable.fromWeb(reply.body as NodeReadableStream<Uint8Array>), res).catch(() => {})
}

export async function createExpressApp(config: Config, overrides: ExpressAppOverrides = {}): Promise<ExpressApp> {
  const pool = await connectDatabase(config.databaseUrl, overrides.schema)
  let services: Services
  try {
    const applied = await migrate(pool)
    await pool.query(migrationSql()) // the outbox table (IF NOT EXISTS)
    services = await connectServices(config, overrides)
    services.log(
      `postgres: connected, schema ${overrides.schema ?? 'public'}, migrations applied now: ${applied.length}`,
    )
  } catch (error) {
    await pool.end()
    throw error
  }
  const { log } = services
  // Sign-ups and confirmations enqueue their email in their own transaction (mailstream/pg):
  // the outbox needs the queue, which the host creates below.
  let outbox: Outbox | undefined
  const store = createPgStore(pool, () => outbox)
  const emailLog = createEmailLog(pool, log)
  // Advertising consents: sponsored issues go to consenting subscribers only, with the reminder run.
  const consents = createPgConsents(pool)

  // The welcome series runs on the service's queue, which the host creates below.
  let sequences: Sequences | undefined
  const app = express()
  // Behind a proxy (a load balancer), set 'trust proxy' so that req.ip is the client's address.
  app.disable('x-powered-by')

  const host = createHost({
    config,
    services,
    store,
    consents,
    overrides,
    onSesEvent: emailLog.recordSesEvent,
    welcomeSeries: (service) => {
      const created = createWelcomeSeries(config, service.queue, log, overrides.sequences)
      sequences = created.sequences
      return created.series
    },
    createServer: ({ service, routes }) => {
      const admin = (req: Request, res: Response, next: NextFunction) => {
        const denied = routes.adminAuth(req.headers.authorization)
        if (denied) send(res, denied)
        else next()
      }
      const body = express.json({ limit: '512kb' })

      app.post('/api/auth/send-verification-code', body, async (req, res) => {
        send(res, await routes.sendVerificationCode(req.body, req.ip))
      })
      app.post('/api/auth/verify-code', body, async (req, res) => {
        send(res, await routes.verifyCode(req.body))
      })
      app.post('/api/subscriptions', body, async (req, res) => {
        send(res, await routes.subscribe(req.body))
      })
      app.get('/api/subscriptions/confirm', async (req, res) => {
        send(res, await routes.confirmSubscription(req.query.token as string | undefined))
      })
      app.get('/api/unsubscribe', (req, res) => {
        send(res, routes.unsubscribePage(req.query.token as string | undefined))
      })
      // The body (List-Unsubscribe=One-Click) needs no parsing: the token in the URL decides.
      app.post('/api/unsubscribe', async (req, res) => {
        send(res, await routes.unsubscribe(req.query.token as string | undefined))
      })
      app.post('/api/consents', body, async (req, res) => {
        send(res, await routes.giveConsent(req.body))
      })
      app.post('/api/consents/withdraw', body, async (req, res) => {
        send(res, await routes.withdrawConsent(req.body))
      })
      app.get('/api/consents/action', (req, res) => {
        send(res, routes.consentActionPage(req.query.token as string | undefined))
      })
      app.post('/api/consents/action', async (req, res) => {
        send(res, await routes.consentAction(req.query.token as string | undefined))
      })
      app.post('/api/issues/:id/publish', admin, body, async (req, res) => {
        send(res, await routes.publishIssue(req.params.id as string, req.body))
      })
      app.get('/api/issues/:id/progress', async (req, res) => {
        send(res, await routes.issueProgress(req.params.id as string))
      })
      // SNS posts JSON as text/plain.
      app.post('/webhooks/ses', express.text({ type: '*/*', limit: '256kb' }), async (req, res) => {
        send(res, await routes.sesWebhook(req.body, req.headers))
      })
      app.get('/healthz', async (_req, res) => {
        send(res, await routes.health())
      })
      app.get('/metrics', async (_req, res) => {
        send(res, await routes.metrics())
      })
      app.use('/dashboard', admin, service.dashboard)

      app.use((_req, res) => send(res, json(404, { error: { code: 'E_NOT_FOUND', message: 'not found' } })))
      app.use(
        (error: Error & { status?: number; type?: string }, _req: Request, res: Response, _next: NextFunction) => {
          // Body parser errors (bad JSON, too large) carry their status; anything else is a 500.
          if (error.status && error.status < 500) {
            send(res, json(error.status, { error: { code: 'E_BAD_REQUEST', message: error.message } }))
          } else {
            send(res, routes.errorReply(error))
          }
        },
      )
      return createServer(app)
    },
    async closeStore() {
      await emailLog.flush()
      await pool.end()
      log('postgres: pool closed')
    },
  })
  emailLog.attach(host.service.worker)
  outbox = createOutbox({ queue: host.service.queue })
  const relay = createOutboxRelay({
    queue: host.service.queue,
    pool,
    onError: (error) => log(`outbox: ${error.message}`),
  })
  const runner = sequences
  if (!runner) throw new Error('the host did not create the welcome series')
  return {
    ...host,
    app,
    pool,
    sequences: runner,
    // The relay and the series' runner run with the worker: started after it, stopped before it
    // (rows left wait in the table, steps due wait in Redis).
    async listen(port, hostname) {
      const url = await host.listen(port, hostname)
      relay.start()
      runner.start()
      return url
    },
    async stop(stopOptions) {
      await relay.stop()
      await runner.stop()
      await host.stop(stopOptions)
    },
  }
}
