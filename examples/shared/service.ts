/**
 * The mail side of the service: one queue, one worker, the templates, verification codes, the SES
 * webhook and the dashboard, on one Redis. Both hosts build it the same way.
 */
import type { Redis } from 'ioredis'
import {
  type BatchProgressStream,
  batchProgressStream,
  createEmailQueue,
  createEmailWorker,
  createRateLimiter,
  createSesWebhookHandler,
  createTemplateRenderer,
  createVerificationCodes,
  type EmailQueue,
  type EmailWorker,
  type EmailWorkerOptions,
  type FetchCertificate,
  type RateLimiter,
  type SesEvent,
  type SesWebhookHandler,
  type TemplateRenderer,
  type Transport,
  type VerificationCodes,
} from 'mailstream'
import { createDashboard, type Dashboard } from 'mailstream/dashboard'
import type { Config } from './config.js'
import type { AdvertisingConsents } from './consents.js'

/** The list named in newsletter unsubscribe tokens. */
export const NEWSLETTER_LIST = 'newsletter'
/** The list named in subscription confirmation tokens, so that one kind of link never works as the other. */
export const CONFIRM_LIST = 'confirm'

export interface MailServiceOptions {
  config: Config
  redis: Redis
  transport: Transport
  log: (line: string) => void
  /** Each new SES event, after Redis was updated (the Express example writes it to EmailLog). */
  onSesEvent?: (event: SesEvent) => void | Promise<void>
  /** Tests: where SNS signing certificates come from. */
  fetchCertificate?: FetchCertificate
  /** Tests: more worker options. */
  worker?: Partial<EmailWorkerOptions>
  /**
   * The app's advertising consents: with them the queue has the advertising profile (docs/korea.md),
   * so that a sponsored issue reaches consenting subscribers only. Without: advertising is refused.
   */
  consents?: AdvertisingConsents
}

export interface MailService {
  config: Config
  redis: Redis
  transport: Transport
  queue: EmailQueue
  worker: EmailWorker
  templates: TemplateRenderer
  codes: VerificationCodes
  /** Undefined when SNS_TOPIC_ARNS is not set. */
  webhook: SesWebhookHandler | undefined
  dashboard: Dashboard
  /** For sign-ups: how many confirmation emails one address may be sent. */
  limiter: RateLimiter
  /** A batch's progress as server-sent events: the current state first, then each update, ending after `done`. */
  progressEvents(batchId: string): BatchProgressStream
  /** Progress streams open right now. */
  readonly openProgressStreams: number
  start(): Promise<void>
  /** Ends the progress and dashboard event streams, so that the HTTP server can close. */
  closeStreams(): Promise<void>
  /** Drains the worker (at most `timeoutMs`), then closes the queue and the Redis connection. */
  stop(options?: { timeoutMs?: number }): Promise<void>
}

export function createMailService(options: MailServiceOptions): MailService {
  const { config, redis, transport, log } = options
  const prefix = config.prefix

  const { sender } = config.advertising
  const consents = options.consents
  const queue = createEmailQueue({
    redis,
    prefix,
    ...(consents && {
      advertising: {
        sender,
        consent: (addresses: string[]) => consents.lookup(addresses),
        ...(!config.advertising.quietHours && { quietHours: false as const }),
      },
    }),
  })
  const templates = createTemplateRenderer({
    locale: 'ko',
    defaults: { brandName: config.brandName, frontendUrl: config.publicUrl },
    // Every newsletter, confirmation and welcome email carries a signed link to /api/unsubscribe and
    // the List-Unsubscribe headers (List-Unsubscribe-Post too when PUBLIC_URL is https).
    unsubscribe: {
      secret: config.unsubscribeSecret,
      url: `${config.publicUrl}/api/unsubscribe`,
      list: NEWSLETTER_LIST,
    },
  })
  const worker = createEmailWorker({
    redis,
    prefix,
    transport,
    templates,
    from: config.mailFrom,
    // Advertising jobs show the sender in the footer; the worker checks it is there before each send.
    advertising: { sender },
    ...(config.rateLimitPerSecond !== undefined && { rateLimit: { perSecond: config.rateLimitPerSecond } }),
    ...options.worker,
  })
  worker.on('error', (error) => log(`worker: ${error.message}`))
  worker.on('dead', ({ id, error }) => log(`worker: job ${id} dead-lettered: ${error}`))
  let abandoned = 0
  worker.on('stopped', (event) => {
    abandoned = event.abandoned
  })

  const codes = createVerificationCodes({ queue, secret: config.codeSecret, keyPrefix: `${prefix}:verification` })
  const limiter = createRateLimiter({ redis, prefix: `${prefix}:limit` })
  const webhook =
    config.snsTopicArns.length > 0
      ? createSesWebhookHandler({
          queue,
          allowedTopicArns: config.snsTopicArns,
          ...(options.onSesEvent && { onEvent: options.onSesEvent }),
          ...(options.fetchCertificate && { fetchCertificate: options.fetchCertificate }),
        })
      : undefined
  const dashboard = createDashboard({
    queue,
    basePath: '/dashboard',
    title: `${config.brandName} mail`,
    // Without a password the dashboard is open to anyone who can reach it: show, never change.
    readOnly: config.dashboardPassword === undefined,
  })

  // Open progress streams, so that closeStreams() can end them before the HTTP server closes.
  const streams = new Set<AbortController>()

  function progressEvents(batchId: string): BatchProgressStream {
    const stop = new AbortController()
    streams.add(stop)
    return batchProgressStream(queue, batchId, { signal: stop.signal, onClose: () => streams.delete(stop) })
  }

  return {
    config,
    redis,
    transport,
    queue,
    worker,
    templates,
    codes,
    webhook,
    dashboard,
    limiter,
    progressEvents,
    get openProgressStreams() {
      return streams.size
    },
    async start() {
      await worker.start()
      log(`worker: started (prefix ${prefix}, transport ${transport.name})`)
      if (!webhook) log('webhook: SNS_TOPIC_ARNS is not set, so /webhooks/ses answers 404')
    },
    async closeStreams() {
      for (const stop of [...streams]) stop.abort()
      await dashboard.close()
    },
    async stop({ timeoutMs = 10_000 } = {}) {
      log(`worker: draining (${worker.inFlight} in flight, waiting up to ${timeoutMs} ms)`)
      await worker.stop({ timeoutMs })
      log(
        abandoned === 0
          ? 'worker: stopped, every send finished'
          : `worker: stopped, ${abandoned} unfinished sends stay pending for another worker`,
      )
      await queue.close()
      await transport.close?.()
      log('queue: closed')
      await redis.quit()
      log('redis: connection closed')
    },
  }
}
