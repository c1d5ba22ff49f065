/**
 * What both hosts do around their framework: connect Redis, build the mail service and the
 * routes, listen, and shut down in order (HTTP server, worker, queue, Redis).
 */
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import type { EmailWorkerOptions, FetchCertificate, SesEvent, Transport } from 'mailstream'
import type { Config } from './config.js'
import { type AdvertisingConsents, createReminderRun, type ReminderRun } from './consents.js'
import { createRoutes, type Routes, type WelcomeSeries } from './routes.js'
import { createMailService, type MailService } from './service.js'
import type { SubscriberStore } from './store.js'
import { createTransport, describeTransport } from './transport.js'

/** What a test (or another host) may replace. */
export interface AppOverrides {
  /** Default: the transport the configuration names (SES, SMTP or preview). */
  transport?: Transport
  /** One line per lifecycle step. Default: console.log with a timestamp. */
  log?: (line: string) => void
  fetchCertificate?: FetchCertificate
  worker?: Partial<EmailWorkerOptions>
}

export interface ExampleApp {
  service: MailService
  store: SubscriberStore
  routes: Routes
  /** The daily consent reminder run, when the host keeps advertising consents. */
  reminders?: ReminderRun
  /** Starts the worker, then listens. Resolves the server's URL. */
  listen(port?: number, host?: string): Promise<string>
  /** Graceful shutdown: stop accepting requests, drain the worker, close the queue and Redis. Safe to call twice. */
  stop(options?: { timeoutMs?: number }): Promise<void>
}

export const consoleLog = (line: string) => console.log(`${new Date().toISOString()} ${line}`)

/** A Redis URL for the log, without its password. */
export function redactUrl(url: string): string {
  const parsed = new URL(url)
  if (parsed.password) parsed.password = '***'
  return parsed.toString()
}

export interface Services {
  log: (line: string) => void
  redis: Redis
  transport: Transport
}

/** The Redis connection and the transport, as both hosts start them. */
export async function connectServices(config: Config, overrides: AppOverrides): Promise<Services> {
  if (!config.redisUrl)
    throw new Error('config.redisUrl is not set (server.ts starts a redis-server when REDIS_URL is unset)')
  const log = overrides.log ?? consoleLog
  const redis = new Redis(config.redisUrl)
  redis.on('error', (error) => log(`redis: ${error.message}`))
  let transport: Transport
  try {
    await redis.ping()
    log(`redis: connected to ${redactUrl(config.redisUrl)}`)
    transport = overrides.transport ?? (await createTransport(config.transport))
  } catch (error) {
    redis.disconnect()
    throw error
  }
  log(`transport: ${overrides.transport ? transport.name : describeTransport(config.transport)}`)
  return { log, redis, transport }
}

export function createHost(options: {
  config: Config
  services: Services
  store: SubscriberStore
  overrides: AppOverrides
  onSesEvent?: (event: SesEvent) => void | Promise<void>
  /** The advertising consents, if the host keeps them: the consent routes, sponsored issues and reminders work. */
  consents?: AdvertisingConsents
  /** The welcome series on the service's queue, if the host runs one: a confirmation enrols in it instead of sending the welcome job. */
  welcomeSeries?: (service: MailService) => WelcomeSeries
  /** Builds the framework's server around the routes (not listening yet). */
  createServer: (context: { service: MailService; routes: Routes }) => Server
  /** Closes what the host opened besides Redis (a database pool), after the worker stopped. */
  closeStore?: () => Promise<void>
}): ExampleApp {
  const { config, services, store, overrides } = options
  const { redis, transport, log } = services
  const service = createMailService({
    config,
    redis,
    transport,
    log,
    ...(options.onSesEvent && { onSesEvent: options.onSesEvent }),
    ...(overrides.fetchCertificate && { fetchCertificate: overrides.fetchCertificate }),
    ...(overrides.worker && { worker: overrides.worker }),
    ...(options.consents && { consents: options.consents }),
  })
  const welcomeSeries = options.welcomeSeries?.(service)
  const routes = createRoutes({
    service,
    store,
    log,
    ...(options.consents && { consents: options.consents }),
    ...(welcomeSeries && { welcomeSeries }),
  })
  const reminders =
    options.consents && createReminderRun({ config, queue: service.queue, consents: options.consents, log })
  const server = options.createServer({ service, routes })
  let stopping: Promise<void> | undefined

  async function closeServer(): Promise<void> {
    if (!server.listening) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    // Open event streams keep their connections busy: end them, then the server can close.
    await service.closeStreams()
    const force = setTimeout(() => server.closeAllConnections(), 5000)
    await closed
    clearTimeout(force)
    log('http: server closed')
  }

  return {
    service,
    store,
    routes,
    ...(reminders && { reminders }),
    async listen(port = config.port, host) {
      await service.start()
      reminders?.start()
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      const address = server.address() as AddressInfo
      const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`
      log(`http: listening on ${url} (public URL ${config.publicUrl})`)
      return url
    },
    stop(stopOptions = {}) {
      stopping ??= (async () => {
        await closeServer()
        await reminders?.stop()
        await service.stop(stopOptions)
        await options.closeStore?.()
      })()
      return stopping
    },
  }
}
