// The job status record `P:status:<id>`: the one module that knows its fields and reads them.
// The scripts that write it (enqueue, activate, promote, finish, cancel, retry-dead, ses-event)
// use these field names; TypeScript reads the record only through `parseStatus` and `STATUS`.
import type { Priority } from './job.js'

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

/** Field names of the status hash. */
export const STATUS = {
  status: 'status',
  priority: 'priority',
  type: 'type',
  attempts: 'attempts',
  maxAttempts: 'maxAttempts',
  batch: 'batch',
  /** The send-stream entry id while the job waits in a stream (or is being sent from it). */
  entry: 'entry',
  messageId: 'messageId',
  error: 'error',
  createdAt: 'createdAt',
  updatedAt: 'updatedAt',
  sentAt: 'sentAt',
  dueAt: 'dueAt',
  /** The W3C traceparent of the job's enqueue span, when it was traced (see docs/operations.md). */
  trace: 'trace',
} as const

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
  const parsed = Number(value ?? 0)
  return Number.isFinite(parsed) ? parsed : 0
}

const optionalNumber = (value: string | undefined): number | undefined =>
  value === undefined || value === '' ? undefined : Number(value)

/** The delivery fields of a job's status hash, or undefined when no SES event reached it. */
function jobDelivery(hash: Record<string, string>): JobDelivery | undefined {
  if (!['delivery', 'opens', 'clicks', 'bounceType'].some((field) => hash[field] !== undefined)) return undefined
  const delivery: JobDelivery = { opens: count(hash.opens), clicks: count(hash.clicks) }
  if (hash.delivery) delivery.state = hash.delivery as JobDelivery['state']
  if (hash.bounceType) delivery.bounceType = hash.bounceType
  for (const field of ['deliveredAt', 'bouncedAt', 'complainedAt', 'openedAt', 'clickedAt'] as const) {
    if (hash[field] !== undefined) delivery[field] = count(hash[field])
  }
  return delivery
}

/** Where a status hash says its job waits: the send-stream entry, by priority; undefined when in none. */
export function streamEntryOf(hash: Record<string, string>): { priority: Priority; entryId: string } | undefined {
  const entryId = hash[STATUS.entry]
  if (!entryId) return undefined
  return { priority: (hash[STATUS.priority] ?? 'normal') as Priority, entryId }
}

/**
 * A job's state from its status hash (as `HGETALL` gives it); null when the hash has no status
 * (unknown or expired). `status` is as stored: the caller decides whether a queued job is active.
 */
export function parseStatus(id: string, hash: Record<string, string>): JobState | null {
  const status = hash[STATUS.status] as JobStatusName | undefined
  if (!status) return null
  const state: JobState = {
    id,
    status,
    type: hash[STATUS.type] ?? '',
    priority: (hash[STATUS.priority] ?? 'normal') as Priority,
    attempts: Number(hash[STATUS.attempts] ?? 0),
    maxAttempts: Number(hash[STATUS.maxAttempts] ?? 3),
    createdAt: Number(hash[STATUS.createdAt] ?? 0),
    updatedAt: Number(hash[STATUS.updatedAt] ?? hash[STATUS.createdAt] ?? 0),
  }
  if (hash[STATUS.batch]) state.batchId = hash[STATUS.batch]
  if (hash[STATUS.messageId]) state.messageId = hash[STATUS.messageId]
  if (hash[STATUS.error]) state.error = hash[STATUS.error]
  const sentAt = optionalNumber(hash[STATUS.sentAt])
  const dueAt = optionalNumber(hash[STATUS.dueAt])
  if (sentAt !== undefined) state.sentAt = sentAt
  if (dueAt !== undefined) state.dueAt = dueAt
  const delivery = jobDelivery(hash)
  if (delivery) state.delivery = delivery
  return state
}
