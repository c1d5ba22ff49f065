/**
 * The service's HTTP routes as plain functions: each takes what it needs from the request and
 * returns `{ status, headers, body }`. The Express and Hono hosts only translate.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import {
  type BatchOptions,
  batchJobId,
  createUnsubscribeToken,
  type EmailJobInput,
  findAdvertisingMark,
  MailstreamError,
  parseAddress,
  RateLimitError,
  type SesWebhookRequest,
  sendConsentNotice,
  verifyConsentActionToken,
  verifyUnsubscribeToken,
} from 'mailstream'
import type { AdvertisingConsents, StoredChange } from './consents.js'
import { CONFIRM_LIST, type MailService, NEWSLETTER_LIST } from './service.js'
import type { EmailFor, Subscriber, SubscriberStore } from './store.js'

/**
 * A welcome series (mailstream/sequences) whose first step is the welcome email: with one, a
 * confirmation enrols the subscriber instead of enqueueing the welcome job (the Express example).
 */
export interface WelcomeSeries {
  /** Enrols once per address; `restart` starts again a series that is over (a resubscription). */
  enroll(subscriber: Subscriber, options: { restart: boolean }): Promise<{ created: boolean }>
  /** Ends the address's series (its goal event `unsubscribed`). */
  unsubscribed(email: string): Promise<void>
}

export interface Reply {
  status: number
  headers: Record<string, string>
  body: string
}

/** A reply whose body is a stream (server-sent events). */
export interface StreamReply {
  status: number
  headers: Record<string, string>
  body: ReadableStream<Uint8Array>
}

export type Routes = ReturnType<typeof createRoutes>

/** The batch of an issue: one job per subscriber, so publishing twice sends nothing twice. */
export const issueBatchId = (issueId: string) => `issue-${issueId}`
/** How many of the latest issues an unsubscribe looks at for jobs still waiting to be sent. */
const RECENT_ISSUES = 3

const LOCALES = ['ko', 'en']
const ISSUE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/
/** How long a subscription confirmation link works. */
const CONFIRM_TTL_MS = 48 * 3600_000
/** Confirmation emails one address may be sent per hour: the sign-up form must not be a way to mail-bomb someone. */
const CONFIRMATIONS_PER_HOUR = 3

export const json = (status: number, value: unknown, headers: Record<string, string> = {}): Reply => ({
  status,
  headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  body: JSON.stringify(value),
})

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`)

/** A small page for links people click in emails. `content` must already be escaped. */
function page(status: number, title: string, content: string): Reply {
  return {
    status,
    headers: {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
    },
    body: `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2933}
button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#3b5bdb;color:#fff;cursor:pointer}</style>
</head><body><h1>${escapeHtml(title)}</h1>${content}</body></html>
`,
  }
}

const notImplemented = () =>
  json(501, {
    error: { code: 'E_NOT_IMPLEMENTED', message: 'this host keeps no advertising consents (see the Express example)' },
  })

const invalidUnsubscribeLink = () => page(400, 'This link is not valid', '<p>Use the link in a recent email.</p>')

function validationError(field: string, message: string): MailstreamError {
  return new MailstreamError('E_VALIDATION', `${field}: ${message}`, { field })
}

/** A bare address, trimmed and lower-case; throws `E_VALIDATION` naming `email` otherwise. */
function emailOf(value: unknown): string {
  // A bare address only (no display name); an internationalised domain comes back as punycode.
  const address = typeof value === 'string' && !/[<>"]/.test(value) ? parseAddress(value) : null
  if (!address || address.name !== undefined) {
    throw validationError('email', 'must be an email address like a@example.com')
  }
  return address.address.toLowerCase()
}

function optionalString(body: Record<string, unknown>, field: string, maxLength: number): string | undefined {
  const value = body[field]
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string' || value.length > maxLength) {
    throw validationError(field, `must be a string of at most ${maxLength} characters`)
  }
  return value.trim() || undefined
}

function requiredString(body: Record<string, unknown>, field: string, maxLength: number): string {
  const value = optionalString(body, field, maxLength)
  if (value === undefined) throw validationError(field, 'is required')
  return value
}

const objectOf = (body: unknown): Record<string, unknown> =>
  typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : {}

const retryAfterSeconds = (ms: number) => String(Math.max(1, Math.ceil(ms / 1000)))

/** Resolves `promise`, or rejects after `ms`: a health check must answer even when Redis does not. */
function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** The sponsor section of an issue: `{ name, body }` (Markdown), or undefined when none was given. */
function sponsorOf(input: Record<string, unknown>): { name: string; body: string } | undefined {
  if (input.sponsor === undefined || input.sponsor === null) return undefined
  if (typeof input.sponsor !== 'object' || Array.isArray(input.sponsor)) {
    throw validationError('sponsor', 'must be { name, body }')
  }
  const sponsor = input.sponsor as Record<string, unknown>
  const name = optionalString(sponsor, 'name', 200)
  const body = optionalString(sponsor, 'body', 20_000)
  if (name === undefined) throw validationError('sponsor.name', 'is required')
  if (body === undefined) throw validationError('sponsor.body', 'is required')
  return { name, body }
}

/**
 * The A/B test of an issue: `{ subjects: [2 to 5 subjects], share, decideAfter, metric?, minSample? }`,
 * as enqueueBatch's `variants` (one subject each) and `test` (which checks the rest); undefined when none.
 */
function abTestOf(input: Record<string, unknown>): Pick<BatchOptions, 'variants' | 'test'> | undefined {
  if (input.test === undefined || input.test === null) return undefined
  if (typeof input.test !== 'object' || Array.isArray(input.test)) {
    throw validationError('test', 'must be { subjects, share, decideAfter, metric? }')
  }
  const { subjects, metric = 'clicks', ...test } = input.test as Record<string, unknown>
  if (!Array.isArray(subjects) || subjects.length < 2 || subjects.length > 5) {
    throw validationError('test.subjects', 'must be 2 to 5 subjects')
  }
  const variants = subjects.map((subject, index) => {
    if (typeof subject !== 'string' || subject.trim() === '' || subject.length > 200 || /[\r\n]/.test(subject)) {
      throw validationError(`test.subjects.${index}`, 'must be a line of at most 200 characters')
    }
    // As for the title: only a sponsored issue carries the mark, and a sponsored one is never tested.
    const mark = findAdvertisingMark(subject)
    if (mark) throw validationError(`test.subjects.${index}`, `may not carry '${mark.text}'`)
    return { subject: subject.trim() }
  })
  return { variants, test: { ...test, metric } as BatchOptions['test'] }
}

export function createRoutes({
  service,
  store,
  log,
  consents,
  welcomeSeries,
}: {
  service: MailService
  store: SubscriberStore
  log: (line: string) => void
  /** Without: the consent routes and sponsored issues answer 501. */
  consents?: AdvertisingConsents
  /** Without: a confirmation enqueues one welcome email. */
  welcomeSeries?: WelcomeSeries
}) {
  const { config, queue, codes } = service
  const { sender } = config.advertising

  /** The 제7항 processing notice for a stored change, keyed by its stored time (a retry sends nothing twice). */
  function notify(email: string, change: 'consented' | 'withdrawn', stored: StoredChange, method: string) {
    return sendConsentNotice(queue, {
      to: email,
      change,
      at: stored.at,
      sender,
      method,
      manageUrl: config.publicUrl,
    })
  }

  /** Checks the verification code of a consent request (`E_VALIDATION` on `code`), once only. */
  async function verifiedEmail(input: Record<string, unknown>): Promise<string> {
    const email = emailOf(input.email)
    const result = await codes.verify(email, String(input.code ?? ''))
    if (!result.ok) throw validationError('code', `is not valid (${result.reason})`)
    return email
  }

  /** Withdraws a consent and sends the notice; false when the address never consented. */
  async function withdraw(email: string, method: string): Promise<boolean> {
    const stored = await (consents as AdvertisingConsents).withdraw(email, { method })
    if (!stored) return false
    await notify(email, 'withdrawn', stored, method)
    log(`consents: ${email} withdrew (${method})${stored.changed ? '' : ', already withdrawn'}`)
    return true
  }

  /** Turns an error into a reply: validation 400, rate limits 429, anything else 500 (logged). */
  function errorReply(error: unknown): Reply {
    if (error instanceof RateLimitError) {
      return json(
        429,
        { error: { code: error.code, message: error.message, field: error.field } },
        { 'retry-after': retryAfterSeconds(error.retryAfterMs) },
      )
    }
    if (error instanceof MailstreamError && error.code === 'E_VALIDATION') {
      return json(400, { error: { code: error.code, message: error.message, field: error.field } })
    }
    log(`http: ${(error as Error)?.stack ?? error}`)
    return json(500, { error: { code: 'E_INTERNAL', message: 'internal error' } })
  }

  async function handled(run: () => Promise<Reply>): Promise<Reply> {
    try {
      return await run()
    } catch (error) {
      return errorReply(error)
    }
  }

  function confirmUrl(email: string): string {
    const token = createUnsubscribeToken(
      { email, list: CONFIRM_LIST, expiresAt: Date.now() + CONFIRM_TTL_MS },
      config.unsubscribeSecret,
    )
    return `${config.publicUrl}/api/subscriptions/confirm?token=${encodeURIComponent(token)}`
  }

  const passwordDigest =
    config.dashboardPassword !== undefined
      ? createHash('sha256').update(`admin:${config.dashboardPassword}`).digest()
      : undefined

  return {
    /**
     * HTTP basic auth (user `admin`, password DASHBOARD_PASSWORD) for the dashboard and publishing.
     * Resolves undefined when the request may pass, or the 401 reply.
     */
    adminAuth(authorization: string | undefined | null): Reply | undefined {
      if (!passwordDigest) return undefined
      const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(authorization ?? '')
      const given = createHash('sha256')
        .update(match ? Buffer.from(match[1] as string, 'base64').toString('utf8') : '')
        .digest()
      if (timingSafeEqual(given, passwordDigest)) return undefined
      return json(
        401,
        { error: { code: 'E_UNAUTHORIZED', message: 'authentication required' } },
        {
          'www-authenticate': 'Basic realm="mailstream", charset="UTF-8"',
        },
      )
    },

    /** POST /api/auth/send-verification-code {email} */
    sendVerificationCode(body: unknown, ip?: string): Promise<Reply> {
      return handled(async () => {
        const input = objectOf(body)
        const locale = LOCALES.includes(input.locale as string) ? (input.locale as string) : undefined
        const { expiresAt } = await codes.issue(input.email as string, {
          ...(ip && { ip }),
          ...(locale && { locale }),
        })
        return json(202, { ok: true, expiresAt: new Date(expiresAt).toISOString() })
      })
    },

    /** POST /api/auth/verify-code {email, code} */
    verifyCode(body: unknown): Promise<Reply> {
      return handled(async () => {
        const input = objectOf(body)
        const result = await codes.verify(input.email as string, String(input.code ?? ''))
        return json(result.ok ? 200 : 400, result)
      })
    },

    /** POST /api/subscriptions {email, name?, locale?}: double opt-in, the subscriber stays pending until confirmed. */
    subscribe(body: unknown): Promise<Reply> {
      return handled(async () => {
        const input = objectOf(body)
        const email = emailOf(input.email)
        const name = optionalString(input, 'name', 100)
        const locale = optionalString(input, 'locale', 5)
        if (locale !== undefined && !LOCALES.includes(locale)) throw validationError('locale', "must be 'ko' or 'en'")

        const allowance = await service.limiter.consume(`subscribe:${email}`, {
          rate: CONFIRMATIONS_PER_HOUR,
          periodMs: 3600_000,
        })
        if (!allowance.allowed) {
          throw new RateLimitError('too many sign-ups for this address', allowance.retryAfterMs, { field: 'email' })
        }
        const confirmation: EmailFor = (subscriber) =>
          subscriber.status !== 'pending'
            ? undefined
            : {
                type: 'subscription-confirm',
                to: subscriber.name ? { name: subscriber.name, address: email } : email,
                template: 'subscription-confirm',
                data: { name: subscriber.name ?? '', confirmUrl: confirmUrl(email) },
                locale: subscriber.locale,
                priority: 'high',
              }
        const subscriber = await store.requestSubscription({ email, name, locale }, confirmation)
        // The same answer whether or not the address was already subscribed: the form does not tell who is.
        const job = store.outbox ? undefined : confirmation(subscriber)
        if (job) await queue.enqueue(job)
        return json(202, { ok: true, message: 'check your inbox to confirm the subscription' })
      })
    },

    /** GET /api/subscriptions/confirm?token=: pending -> active, and a welcome email; a second click changes nothing. */
    confirmSubscription(token: string | undefined): Promise<Reply> {
      return handled(async () => {
        const verified = verifyUnsubscribeToken(token, config.unsubscribeSecret)
        if (!verified.ok || verified.list !== CONFIRM_LIST) {
          const expired = !verified.ok && verified.reason === 'expired'
          return page(
            400,
            expired ? 'This link has expired' : 'This link is not valid',
            '<p>Subscribe again to get a new confirmation email.</p>',
          )
        }
        const subscriber = await store.get(verified.email)
        if (!subscriber || subscriber.status === 'unsubscribed') {
          return page(400, 'This link no longer works', '<p>Subscribe again to get a new confirmation email.</p>')
        }
        const welcome: EmailFor = (active) => ({
          type: 'welcome',
          to: active.name ? { name: active.name, address: active.email } : active.email,
          template: 'welcome',
          data: { name: active.name ?? '' },
          locale: active.locale,
          // A second welcome within 24 h (a resubscription) returns the first job instead.
          idempotencyKey: `welcome:${active.email}`,
        })
        if (welcomeSeries) {
          // The series' first step is the welcome email. A second click enrols nothing; it also
          // enrols a subscriber activated by a click whose process died before the enrolment.
          const activated = await store.activate(subscriber.email)
          if (activated || subscriber.status === 'active') {
            const enrolled = await welcomeSeries.enroll(subscriber, { restart: activated })
            if (enrolled.created) log(`subscriptions: ${subscriber.email} enrolled in the welcome series`)
          }
        } else if ((await store.activate(subscriber.email, welcome)) && !store.outbox) {
          await queue.enqueue(welcome(subscriber) as EmailJobInput)
        }
        return page(
          200,
          'Subscription confirmed',
          `<p>${escapeHtml(subscriber.email)} will receive the newsletter.</p>`,
        )
      })
    },

    /**
     * GET /api/unsubscribe?token=: a page with a button. GET changes nothing, because mail
     * scanners open links; the button POSTs, as a mail client's one-click button does.
     */
    unsubscribePage(token: string | undefined): Reply {
      const verified = verifyUnsubscribeToken(token, config.unsubscribeSecret)
      if (!verified.ok || verified.list !== NEWSLETTER_LIST) return invalidUnsubscribeLink()
      return page(
        200,
        `Unsubscribe from ${config.brandName}`,
        `<p>Stop sending the newsletter to ${escapeHtml(verified.email)}?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
      )
    },

    /**
     * POST /api/unsubscribe?token=: RFC 8058 one-click (body `List-Unsubscribe=One-Click`, no
     * login: the signed token is the authority). It marks the subscriber unsubscribed in the store,
     * so the next issue's fan-out leaves them out. It does NOT add the address to the queue's
     * suppression list: that list is for bounces and complaints, blocks every email to the address
     * (verification codes too), and a subscriber who leaves the newsletter may still sign in.
     * An issue still sending may hold a job for them: that job is cancelled if not sent yet.
     */
    unsubscribe(token: string | undefined): Promise<Reply> {
      return handled(async () => {
        const verified = verifyUnsubscribeToken(token, config.unsubscribeSecret)
        if (!verified.ok || verified.list !== NEWSLETTER_LIST) return invalidUnsubscribeLink()
        await store.unsubscribe(verified.email)
        await welcomeSeries?.unsubscribed(verified.email)
        // The refusal of 제50조 제2항: the advertising consent goes too, with its processing notice.
        if (consents) await withdraw(verified.email, 'unsubscribe link')
        let cancelled = 0
        for (const issue of await store.recentIssues(RECENT_ISSUES)) {
          const batchId = issueBatchId(issue.id)
          if ((await queue.getBatch(batchId))?.done !== false) continue
          if (await queue.cancel(batchJobId(batchId, verified.email))) cancelled++
        }
        log(`subscriptions: ${verified.email} unsubscribed (${verified.list}), ${cancelled} unsent issue(s) cancelled`)
        return page(
          200,
          'You are unsubscribed',
          `<p>${escapeHtml(verified.email)} will not receive the ${escapeHtml(config.brandName)} newsletter any more.</p>`,
        )
      })
    },

    /**
     * POST /api/consents {email, code}: the subscriber consents to advertising (a sponsored issue).
     * The code (from POST /api/auth/send-verification-code) proves the address is theirs. The consent
     * is stored with how, where and to which wording it was given, and the 제7항 notice is sent.
     */
    giveConsent(body: unknown): Promise<Reply> {
      return handled(async () => {
        if (!consents) return notImplemented()
        const input = objectOf(body)
        const locale = optionalString(input, 'locale', 5)
        if (locale !== undefined && !LOCALES.includes(locale)) throw validationError('locale', "must be 'ko' or 'en'")
        const email = await verifiedEmail(input)
        const method = 'website form'
        const stored = await consents.give(email, {
          method,
          source: 'POST /api/consents',
          textVersion: config.advertising.consentTextVersion,
          ...(locale && { locale }),
        })
        await notify(email, 'consented', stored, method)
        log(`consents: ${email} consented${stored.changed ? '' : ', already had'}`)
        return json(stored.changed ? 201 : 200, { ok: true, consentedAt: stored.at.toISOString() })
      })
    },

    /** POST /api/consents/withdraw {email, code}: withdraws the consent, with the 제7항 notice. */
    withdrawConsent(body: unknown): Promise<Reply> {
      return handled(async () => {
        if (!consents) return notImplemented()
        const email = await verifiedEmail(objectOf(body))
        const found = await withdraw(email, 'website form')
        return json(found ? 200 : 404, { ok: found })
      })
    },

    /**
     * GET /api/consents/action?token=: the keep or withdraw link of a 제8항 reminder. GET shows a
     * button and changes nothing (mail scanners open links); the button POSTs.
     */
    consentActionPage(token: string | undefined): Reply {
      if (!consents) return notImplemented()
      const verified = verifyConsentActionToken(token, config.unsubscribeSecret)
      if (!verified.ok) return page(400, 'This link is not valid', '<p>Use the link in a recent email.</p>')
      const [title, button] =
        verified.action === 'withdraw'
          ? [`Stop advertising email from ${config.brandName}?`, 'Withdraw my consent']
          : [`Keep receiving sponsored issues from ${config.brandName}?`, 'Keep my consent']
      return page(
        200,
        title,
        `<p>${escapeHtml(verified.email)}</p><form method="post"><button type="submit">${escapeHtml(button)}</button></form>`,
      )
    },

    /** POST /api/consents/action?token=: withdraw acts (with its notice); keep changes nothing. */
    consentAction(token: string | undefined): Promise<Reply> {
      return handled(async () => {
        if (!consents) return notImplemented()
        const verified = verifyConsentActionToken(token, config.unsubscribeSecret)
        if (!verified.ok) return page(400, 'This link is not valid', '<p>Use the link in a recent email.</p>')
        if (verified.action === 'keep') {
          return page(200, 'Your consent stays', '<p>Nothing changes: thank you for confirming.</p>')
        }
        await withdraw(verified.email, 'reminder link')
        return page(
          200,
          'Your consent is withdrawn',
          `<p>${escapeHtml(verified.email)} will not receive advertising from ${escapeHtml(config.brandName)}.</p>`,
        )
      })
    },

    /**
     * POST /api/issues/:id/publish {title, body, sponsor?: {name, body}, test?: {subjects, share,
     * decideAfter, metric?}}: one job per active
     * subscriber, read from the store in pages. Batch `issue-<id>`: publishing again adds nothing
     * (the jobs are counted as duplicates). An issue with a sponsor section is advertising: it goes
     * to subscribers who consented only, `(광고)` in the subject and the sender in the footer, and
     * the reply counts the others in `withoutConsent`. With `test`, the share gets the subjects in
     * equal parts and the others are `held` until the winner is chosen (docs/newsletters.md).
     */
    publishIssue(id: string, body: unknown): Promise<Reply> {
      return handled(async () => {
        if (!ISSUE_ID_RE.test(id)) throw validationError('id', 'must be 1-64 letters, digits, - or _')
        const input = objectOf(body)
        const sponsor = sponsorOf(input)
        if (sponsor && !consents) return notImplemented()
        const abTest = abTestOf(input)
        if (abTest && sponsor) throw validationError('test', 'a sponsored issue cannot be an A/B test')
        const text = requiredString(input, 'body', 200_000)
        const title = requiredString(input, 'title', 200)
        // The subject is `[brand] title`: a mark in the title is never at its start. A sponsored
        // issue gets `(광고)` in front; any other may not carry it (the worker would refuse every job).
        const mark = findAdvertisingMark(title)
        if (mark) {
          throw validationError(
            'title',
            `may not carry '${mark.text}': an issue with a sponsor is marked (광고) for you`,
          )
        }
        const issue = await store.saveIssue({
          id,
          title,
          body: sponsor ? `${text}\n\n---\n\n### Sponsor: ${sponsor.name}\n\n${sponsor.body}` : text,
          publishedAt: Date.now(),
        })
        const result = await queue.enqueueBatch(
          issueBatchId(id),
          store.activeSubscribers(),
          (subscriber) => ({
            to: subscriber.name ? { name: subscriber.name, address: subscriber.email } : subscriber.email,
            data: { name: subscriber.name ?? '' },
            locale: subscriber.locale,
          }),
          {
            template: 'newsletter-issue',
            data: { title: issue.title, body: issue.body },
            ...(sponsor && { advertising: true as const }),
            ...abTest,
          },
        )
        log(
          `issues: ${id} published: ${result.enqueued} enqueued, ${result.duplicates} already there` +
            (result.withoutConsent === undefined ? '' : `, ${result.withoutConsent} without advertising consent`) +
            (result.held === undefined ? '' : `, ${result.held} held for the A/B test's winner`),
        )
        return json(202, result)
      })
    },

    /**
     * GET /api/issues/:id/progress: server-sent events until the issue is sent. A browser's
     * EventSource reconnects when a stream ends, so close it on the `done` event.
     */
    async issueProgress(id: string): Promise<Reply | StreamReply> {
      if (!ISSUE_ID_RE.test(id) || !(await store.getIssue(id))) {
        return json(404, { error: { code: 'E_NOT_FOUND', message: `no issue ${id}` } })
      }
      return { status: 200, ...service.progressEvents(issueBatchId(id)) }
    },

    /** POST /webhooks/ses: SES events through SNS (the body is JSON sent as text/plain). */
    async sesWebhook(body: unknown, headers: SesWebhookRequest['headers']): Promise<Reply> {
      if (!service.webhook) return json(404, { error: { code: 'E_NOT_FOUND', message: 'SNS_TOPIC_ARNS is not set' } })
      const response = await service.webhook.handle({ body, headers })
      if (response.error) log(`webhook: ${response.outcome}: ${response.error.message}`)
      return { status: response.status, headers: response.headers, body: response.body }
    },

    /**
     * GET /healthz: Redis answers the queue's PING, the store answers, and the worker runs with its
     * own connection to Redis answering; 503 otherwise. A paused worker is still healthy.
     */
    async health(): Promise<Reply> {
      const check = (promise: Promise<unknown>) =>
        within(promise, 2000).then(
          () => 'ok',
          (error: Error) => `error: ${error.message}`,
        )
      const [redis, storeState, workerHealth] = await Promise.all([
        check(queue.ping()),
        check(store.ping()),
        service.worker.health({ timeoutMs: 2000 }),
      ])
      const worker = workerHealth.running ? 'running' : workerHealth.state
      const ok = redis === 'ok' && storeState === 'ok' && workerHealth.ok
      return json(ok ? 200 : 503, { ok, redis, store: storeState, worker })
    },

    /** GET /metrics: Prometheus text. */
    metrics(): Promise<Reply> {
      return handled(async () => ({
        status: 200,
        headers: { 'content-type': 'text/plain; version=0.0.4' },
        body: await queue.metrics(),
      }))
    },

    errorReply,
  }
}
