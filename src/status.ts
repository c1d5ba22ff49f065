import type { Priority } from './job.js'

/**
 * The status hash of one job, `P:status:<id>` (keys.ts `status(id)`): its field names, its
 * parser, and which scripts write it. Its fields are written only by Lua scripts:
 * `enqueue` (a new job), `promote` (a due job back in its stream), `activate` (a delivered entry
 * with no job data: dead), `finish` (every outcome of a send), `cancel`, `retry-dead` (a dead
 * job sent again, the hash written anew) and `ses-event` (delivery tracking after the send).
 */
export const STATUS_FIELDS = {
  status: 'status',
  priority: 'priority',
  type: 'type',
  attempts: 'attempts',
  maxAttempts: 'maxAttempts',
  batchId: 'batch',
  messageId: 'messageId',
  error: 'error',
  createdAt: 'createdAt',
  updatedAt: 'updatedAt',
  sentAt: 'sentAt',
  dueAt: 'dueAt',
  /** The send-stream entry id while the job is live; '' or absent once it is final. */
  entry: 'entry',
  /** The job as JSON, kept here while it waits in the delayed set (scheduled, retrying, throttled). */
  job: 'job',
  /** Its recipients (lower-case, ','-joined), kept with `job`. */
  rcpt: 'rcpt',
  /** Delivery tracking, written by `ses-event`. */
  delivery: 'delivery',
  deliveredAt: 'deliveredAt',
  bouncedAt: 'bouncedAt',
  bounceType: 'bounceType',
  complainedAt: 'complainedAt',
  opens: 'opens',
  openedAt: 'openedAt',
  clicks: 'clicks',
  clickedAt: 'clickedAt',
} as const

/** The scripts that write the status hash (src/lua/<name>.lua). */
export const STATUS_WRITERS = ['enqueue', 'promote', 'activate', 'finish', 'cancel', 'retry-dead', 'ses-event'] as const

export type JobStatusName =
  | 'queued'
  | 'scheduled'
  | 'active'
  | 'retrying'
  | 'throttled'
  | 'sent'
  | 'dead'
  | 'cancelled'
  | 'suppressed'

export const FINAL_STATUSES: readonly JobStatusName[] = ['sent', 'dead', 'cancelled', 'suppressed']

/** Delivery tracking of one job, written by the SES webhook handler (see `JobState.delivery`). */
export interface JobDelivery {
  /** The furthest state reached: delayed < delivered < bounced / rejected / failed < complained. */
  state?: 'delayed' | 'delivered' | 'bounced' | 'rejected' | 'failed' | 'complained'
  deliveredAt?: number
  bouncedAt?: number
  /** `Permanent`, `Transient` or `Undetermined` (a permanent bounce replaces an earlier other one). */
  bounceType?: string
  complainedAt?: number
  /** Open events (every one, not unique). */
  opens: number
  clicks: number
  openedAt?: number
  clickedAt?: number
}

export interface JobState {
  id: string
  status: JobStatusName
  type: string
  priority: Priority
  attempts: number
  maxAttempts: number
  batchId?: string
  messageId?: string
  error?: string
  /** Epoch ms. */
  createdAt: number
  updatedAt: number
  sentAt?: number
  /** When a scheduled or retrying job is due, epoch ms. */
  dueAt?: number
  /** What SES reported after the send (delivered, bounced, opens, ...), once an event arrived. */
  delivery?: JobDelivery
}

const count = (value: string | undefined): number => {
  const number = Number(value ?? 0)
  return Number.isFinite(number) ? number : 0
}

const optionalNumber = (value: string | undefined): number | undefined =>
  value === undefined || value === '' ? undefined : Number(value)

const DELIVERY_MARKS = [STATUS_FIELDS.delivery, STATUS_FIELDS.opens, STATUS_FIELDS.clicks, STATUS_FIELDS.bounceType]
const DELIVERY_TIMES = ['deliveredAt', 'bouncedAt', 'complainedAt', 'openedAt', 'clickedAt'] as const

/** The delivery fields of a status hash, or undefined when no SES event reached the job. */
export function parseDelivery(hash: Record<string, string>): JobDelivery | undefined {
  if (!DELIVERY_MARKS.some((field) => hash[field] !== undefined)) return undefined
  const delivery: JobDelivery = { opens: count(hash.opens), clicks: count(hash.clicks) }
  if (hash.delivery) delivery.state = hash.delivery as JobDelivery['state']
  if (hash.bounceType) delivery.bounceType = hash.bounceType
  for (const field of DELIVERY_TIMES) {
    if (hash[field] !== undefined) delivery[field] = count(hash[field])
  }
  return delivery
}

/**
 * A job's state from its status hash (HGETALL), or null when the hash has no status (unknown,
 * or expired). `status` is as stored: `queued` here may be `active` (delivered to a worker),
 * which only the stream's pending list tells (the queue's `getStatus` asks it).
 */
export function parseStatus(id: string, hash: Record<string, string>): JobState | null {
  if (!hash.status) return null
  const state: JobState = {
    id,
    status: hash.status as JobStatusName,
    type: hash.type ?? '',
    priority: (hash.priority ?? 'normal') as Priority,
    attempts: Number(hash.attempts ?? 0),
    maxAttempts: Number(hash.maxAttempts ?? 3),
    createdAt: Number(hash.createdAt ?? 0),
    updatedAt: Number(hash.updatedAt ?? hash.createdAt ?? 0),
  }
  if (hash.batch) state.batchId = hash.batch
  if (hash.messageId) state.messageId = hash.messageId
  if (hash.error) state.error = hash.error
  const sentAt = optionalNumber(hash.sentAt)
  const dueAt = optionalNumber(hash.dueAt)
  if (sentAt !== undefined) state.sentAt = sentAt
  if (dueAt !== undefined) state.dueAt = dueAt
  const delivery = parseDelivery(hash)
  if (delivery) state.delivery = delivery
  return state
}
