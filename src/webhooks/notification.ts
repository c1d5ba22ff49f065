import { describeError } from '../errors.js'
import { sesEvent } from '../lua/ses-event.js'
import { providerSlowDowns } from '../metrics.js'
import { type SlowDownOptions, slowDownProvider } from '../providers/slow-down.js'
import type { QueueInternals } from '../queue/internals.js'
import { boundedClient, DEFAULT_COMMAND_TIMEOUT_MS } from '../redis.js'
import { recordSesEvent } from '../telemetry/spans.js'
import { failed, reject, respond } from './http.js'
import type { EventLocator } from './locate.js'
import { type ParsedEvent, parseSesEvent, providersToSlowDown, suppressionsOf } from './ses-event.js'
import type { SnsMessage } from './sns.js'
import type { SesEvent, SesWebhookOptions, SesWebhookResponse } from './types.js'

export interface NotificationOptions extends Pick<QueueInternals, 'redis' | 'keys' | 'tracing'> {
  locator: EventLocator
  onEvent?: SesWebhookOptions['onEvent']
  dedupeTtlSeconds: number
  trackingTtlSeconds: number
  /** Where and how a `DeliveryDelay` slows a mailbox provider down; undefined when it does not. */
  slowDown?: { globalKey: string; options: SlowDownOptions } | undefined
}

export interface NotificationHandler {
  /** Applies one verified SNS Notification at most once, then calls `onEvent` until it succeeds. */
  handle(message: SnsMessage, now: number): Promise<SesWebhookResponse>
}

/** Applies SES events from SNS notifications to a queue's statuses, counters and suppression list. */
export function createNotificationHandler({
  redis,
  keys,
  locator,
  onEvent,
  dedupeTtlSeconds,
  trackingTtlSeconds,
  tracing,
  slowDown,
}: NotificationOptions): NotificationHandler {
  // Each reply of the slow-down bounded: a frozen Redis does not hold the response to SNS.
  const bounded = slowDown ? boundedClient(redis, DEFAULT_COMMAND_TIMEOUT_MS) : redis
  /**
   * A delivery delay that says a provider wants less slows it down, once per event (not on SNS's
   * redeliveries). Best effort, as in the worker: the event is applied already, and a 5xx would
   * only bring a duplicate that is not slowed down again.
   */
  async function slowDownFor(parsed: ParsedEvent): Promise<void> {
    if (!slowDown) return
    for (const provider of providersToSlowDown(parsed)) {
      try {
        const { decreased } = await slowDownProvider(bounded, slowDown.globalKey, provider, slowDown.options)
        if (decreased) await bounded.hincrby(keys.metrics, providerSlowDowns(provider), 1)
      } catch {
        // Redis failed or timed out: the provider's own replies will slow it down.
      }
    }
  }

  async function runHook(event: SesEvent): Promise<SesWebhookResponse | undefined> {
    if (!onEvent) return undefined
    try {
      await onEvent(event)
    } catch (error) {
      // The dedupe key stays at 'hook': SNS's redelivery calls onEvent again without counting twice.
      return failed(`onEvent failed: ${describeError(error)}`, error)
    }
    await redis.set(keys.sns(event.id), 'done', 'KEEPTTL', 'XX')
    return undefined
  }

  return {
    async handle(message, now) {
      const sentAt = Date.parse(message.Timestamp)
      if (!Number.isFinite(sentAt)) return reject(400, 'Timestamp is not a date', 'Timestamp')
      // Older than the dedupe memory: a replay could count twice, and SNS stops retrying long before.
      if (now - sentAt > dedupeTtlSeconds * 1000) return reject(403, 'notification is too old', 'Timestamp')
      const parsed = parseSesEvent(message.Message, now)
      if (!parsed) return respond(200, 'ignored', 'ignored: not an SES event')
      const { jobId, batchId, found, trace } = await locator.locate(parsed)
      const suppressions = suppressionsOf(parsed, now)
      const applied = await sesEvent(redis, keys, {
        snsMessageId: message.MessageId,
        sesMessageId: parsed.messageId,
        jobId: found ? jobId : undefined,
        batchId,
        dedupeTtlSeconds,
        trackingTtlSeconds,
        hookPending: onEvent !== undefined,
        kind: parsed.type,
        bounceType: parsed.bounceType,
        at: parsed.timestamp,
        opener: parsed.opener,
        suppress: suppressions,
      })
      const event: SesEvent = {
        type: parsed.type,
        id: message.MessageId,
        messageId: parsed.messageId,
        recipients: parsed.recipients,
        suppressed: suppressions.map(([address]) => address),
        timestamp: parsed.timestamp,
        raw: parsed.raw,
      }
      if (jobId !== undefined) event.jobId = jobId
      if (batchId !== undefined) event.batchId = batchId
      if (parsed.bounceType) event.bounceType = parsed.bounceType
      if (parsed.bounceSubType) event.bounceSubType = parsed.bounceSubType
      if (parsed.link) event.link = parsed.link
      if (parsed.opener) event.opener = parsed.opener
      // Once per event: SNS's redeliveries of an applied notification are not recorded again.
      if (applied.state !== 'duplicate') {
        recordSesEvent(tracing, {
          type: parsed.type,
          sesMessageId: parsed.messageId,
          jobId,
          batchId,
          trace,
          recipients: parsed.recipients,
          bounceType: parsed.bounceType,
          timestamp: parsed.timestamp,
        })
      }
      if (applied.state !== 'duplicate') await slowDownFor(parsed)
      if (applied.state === 'duplicate') {
        // Applied before; its onEvent had not succeeded yet, so give the host another go.
        if (applied.previous === 'hook') return (await runHook(event)) ?? respond(200, 'duplicate', 'duplicate')
        return respond(200, 'duplicate', 'duplicate')
      }
      return (await runHook(event)) ?? respond(200, 'processed', 'ok')
    },
  }
}
