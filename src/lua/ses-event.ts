import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export type SesEventKind =
  | 'send'
  | 'delivery'
  | 'bounce'
  | 'complaint'
  | 'reject'
  | 'open'
  | 'click'
  | 'renderingFailure'
  | 'deliveryDelay'

export interface SesEventCall {
  /** The SNS MessageId: the dedupe key. */
  snsMessageId: string
  /** The SES message id: the tracking hash. */
  sesMessageId: string
  /** The job whose status hash is updated; undefined when the event names none that exists. */
  jobId?: string | undefined
  /** The batch whose counters count the event; undefined for none. */
  batchId?: string | undefined
  dedupeTtlSeconds: number
  trackingTtlSeconds: number
  /** True while the host's onEvent has still to run (the dedupe key says 'hook', else 'done'). */
  hookPending: boolean
  kind: SesEventKind
  /** 'Permanent', 'Transient' or 'Undetermined' for a bounce. */
  bounceType?: string | undefined
  /** Epoch ms of the event. */
  at: number
  /** For an open: whether a person or a machine opened (only human opens count for A/B tests). */
  opener?: 'human' | 'machine' | undefined
  /** Addresses (lower-case) to suppress, each with its suppression entry (JSON `{ reason, at }`). */
  suppress: readonly (readonly [address: string, entry: string])[]
}

export type SesEventReply =
  | {
      state: 'new'
      /** Counters this event counted (each at most once per SES message). */
      counted: string[]
      /** How many addresses were newly suppressed. */
      suppressed: number
      /** The job's status hash existed and was updated. */
      statusUpdated: boolean
    }
  /** The SNS message was applied before; `previous` is its dedupe key's value. */
  | { state: 'duplicate'; previous: 'hook' | 'done' }

/** `lua/ses-event.lua`: applies one SES event to a queue's counters, once per SNS message. */
export async function sesEvent(client: RedisClient, keys: QueueKeys, call: SesEventCall): Promise<SesEventReply> {
  const dedupeKey = keys.sns(call.snsMessageId)
  const args: (string | number)[] = [
    call.dedupeTtlSeconds,
    call.trackingTtlSeconds,
    call.hookPending ? 'hook' : 'done',
    call.kind,
    call.bounceType ?? '',
    call.at,
    call.opener ?? '',
  ]
  for (const [address, entry] of call.suppress) args.push(address, entry)
  const reply = await runScript<(string | number)[]>(
    client,
    'sesEvent',
    [
      dedupeKey,
      keys.stats,
      keys.suppressed,
      keys.ses(call.sesMessageId),
      call.jobId !== undefined ? keys.status(call.jobId) : dedupeKey,
      call.batchId !== undefined ? keys.batch(call.batchId) : dedupeKey,
    ],
    args,
  )
  if (reply[0] === 'duplicate') return { state: 'duplicate', previous: reply[1] === 'hook' ? 'hook' : 'done' }
  const counted = String(reply[1] ?? '')
  return {
    state: 'new',
    counted: counted === '' ? [] : counted.split(','),
    suppressed: Number(reply[2] ?? 0),
    statusUpdated: reply[3] === 1,
  }
}
