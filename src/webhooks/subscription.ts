import { describeError } from '../errors.js'
import { failed, reject, respond } from './http.js'
import { confirmSubscription, isSnsSubscribeUrl, type SnsMessage } from './sns.js'
import type { SesWebhookOptions, SesWebhookResponse, SnsSubscriptionMessage } from './types.js'

export interface SubscriptionOptions {
  onSubscription?: SesWebhookOptions['onSubscription']
  /** Fetch the SubscribeURL of a SubscriptionConfirmation. */
  confirm: boolean
  fetch: typeof fetch
  timeoutMs: number
}

export interface SubscriptionHandler {
  /** Handles a verified SubscriptionConfirmation or UnsubscribeConfirmation. */
  handle(message: SnsMessage): Promise<SesWebhookResponse>
}

/** Tells the host of SNS subscription messages and, when asked to, confirms subscriptions. */
export function createSubscriptionHandler({
  onSubscription,
  confirm,
  fetch: fetchImpl,
  timeoutMs,
}: SubscriptionOptions): SubscriptionHandler {
  return {
    async handle(message) {
      const type = message.Type as SnsSubscriptionMessage['type']
      if (onSubscription) {
        await onSubscription({
          type,
          topicArn: message.TopicArn,
          subscribeUrl: message.SubscribeURL as string,
          token: message.Token as string,
          message: message.Message,
        })
      }
      if (type === 'UnsubscribeConfirmation') return respond(200, 'unsubscribe', 'ok')
      if (!confirm) return respond(200, 'subscription', 'subscription received, not confirmed')
      if (!isSnsSubscribeUrl(message.SubscribeURL, message.TopicArn)) {
        return reject(403, 'SubscribeURL is not an SNS ConfirmSubscription URL for the topic', 'SubscribeURL')
      }
      try {
        await confirmSubscription(fetchImpl, message.SubscribeURL, message.TopicArn, timeoutMs)
      } catch (error) {
        return failed(`confirming the subscription failed: ${describeError(error)}`, error)
      }
      return respond(200, 'confirmed', 'confirmed')
    },
  }
}
