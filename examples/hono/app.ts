/**
 * The newsletter service on Hono (served by @hono/node-server), with subscribers and issues in
 * Redis next to the queue. `createHonoApp` builds everything without reading the environment;
 * server.ts wires env and signals.
 */
import type { Server } from 'node:http'
import { createAdaptorServer } from '@hono/node-server'
import { getConnInfo } from '@hono/node-server/conninfo'
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import type { Config } from '../shared/config.js'
import { type AppOverrides, connectServices, createHost, type ExampleApp } from '../shared/host.js'
import { json, type Reply, type StreamReply } from '../shared/routes.js'
import { createRedisStore } from './store.js'

export interface HonoApp extends ExampleApp {
  app: Hono
}

/** A route's reply as a web Response; an event stream body is streamed (and cancelled when the client leaves). */
const respond = (reply: Reply | StreamReply) =>
  new Response(reply.body, { status: reply.status, headers: reply.headers })

/** The JSON body, or undefined when it is missing or not JSON (the route then answers 400 naming the field). */
const jsonBody = (c: Context): Promise<unknown> => c.req.json().catch(() => undefined)

export async function createHonoApp(config: Config, overrides: AppOverrides = {}): Promise<HonoApp> {
  const services = await connectServices(config, overrides)
  const store = createRedisStore(services.redis, config.prefix)
  const app = new Hono()

  const host = createHost({
    config,
    services,
    store,
    overrides,
    createServer: ({ service, routes }) => {
      const admin: MiddlewareHandler = async (c, next) => {
        const denied = routes.adminAuth(c.req.header('authorization'))
        if (denied) return respond(denied)
        await next()
      }

      app.post('/api/auth/send-verification-code', async (c) =>
        respond(await routes.sendVerificationCode(await jsonBody(c), getConnInfo(c).remote.address)),
      )
      app.post('/api/auth/verify-code', async (c) => respond(await routes.verifyCode(await jsonBody(c))))
      app.post('/api/subscriptions', async (c) => respond(await routes.subscribe(await jsonBody(c))))
      app.get('/api/subscriptions/confirm', async (c) =>
        respond(await routes.confirmSubscription(c.req.query('token'))),
      )
      app.get('/api/unsubscribe', (c) => respond(routes.unsubscribePage(c.req.query('token'))))
      // The body (List-Unsubscribe=One-Click) needs no parsing: the token in the URL decides.
      app.post('/api/unsubscribe', async (c) => respond(await routes.unsubscribe(c.req.query('token'))))
      // No consent records here: these answer 501, as does publishing an issue with a sponsor.
      app.post('/api/consents', async (c) => respond(await routes.giveConsent(await jsonBody(c))))
      app.post('/api/consents/withdraw', async (c) => respond(await routes.withdrawConsent(await jsonBody(c))))
      app.get('/api/consents/action', (c) => respond(routes.consentActionPage(c.req.query('token'))))
      app.post('/api/consents/action', async (c) => respond(await routes.consentAction(c.req.query('token'))))
      app.post('/api/issues/:id/publish', admin, async (c) =>
        respond(await routes.publishIssue(c.req.param('id'), await jsonBody(c))),
      )
      app.get('/api/issues/:id/progress', async (c) => respond(await routes.issueProgress(c.req.param('id'))))
      // SNS posts JSON as text/plain: hand the handler the raw text.
      app.post('/webhooks/ses', async (c) => respond(await routes.sesWebhook(await c.req.text(), c.req.raw.headers)))
      app.get('/healthz', async () => respond(await routes.health()))
      app.get('/metrics', async () => respond(await routes.metrics()))
      app.use('/dashboard/*', admin)
      app.all('/dashboard/*', (c) => service.dashboard.fetch(c.req.raw))

      app.notFound(() => respond(json(404, { error: { code: 'E_NOT_FOUND', message: 'not found' } })))
      app.onError((error) => respond(routes.errorReply(error)))
      // Without options it is a plain node:http server.
      return createAdaptorServer({ fetch: app.fetch }) as Server
    },
  })
  return { ...host, app }
}
