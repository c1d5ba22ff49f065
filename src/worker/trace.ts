// What one processed job says on its attempt's span: outcome, provider message id, and the
// `retrying` / `dead` events the worker emits, as span events.
import { redactAddresses, type SpanHandle } from '../telemetry/tracing.js'
import type { Processed } from './types.js'

/** Ends the span of one attempt with its outcome; `abandoned` when a hard stop left the entry pending. */
export function endDeliverySpan(span: SpanHandle, processed: Processed | 'abandoned'): void {
  if (processed === 'abandoned') {
    span.set({ 'mailstream.outcome': 'abandoned' })
    span.end()
    return
  }
  const { outcome, failure, attempts } = processed
  span.set({ 'mailstream.outcome': outcome.kind, 'mailstream.attempts': attempts })
  if (failure) span.fail(failure.error)
  switch (outcome.kind) {
    case 'sent':
      span.set({
        'mailstream.provider.message_id': outcome.messageId,
        'mailstream.rejected.count': outcome.rejected?.length,
      })
      break
    case 'retry':
    case 'throttle':
      span.event('retrying', {
        'mailstream.attempts': attempts,
        'mailstream.retry.at': outcome.dueAt,
        'mailstream.retry.delay_ms': Math.max(0, outcome.dueAt - Date.now()),
        'mailstream.retry.throttled': outcome.kind === 'throttle',
        'mailstream.error': redactAddresses(outcome.error),
      })
      break
    case 'dead':
      // A job dead without a try (too many deliveries, unreadable) failed too.
      if (!failure) span.fail(new Error(outcome.error))
      span.event('dead', { 'mailstream.attempts': attempts, 'mailstream.error': redactAddresses(outcome.error) })
      break
    case 'suppressed':
      span.set({ 'mailstream.suppressed.count': processed.work.suppressed.length })
      break
  }
  span.end()
}
