// The test queue's stand-in for Redis: job records, idempotency keys and their expiry, on a
// virtual clock that moves only when the test moves it.
import type { EmailJob, Priority } from '../job.js'
import type { JobState, JobStatusName } from '../status.js'

/** What `P:status:<id>` holds for one job, plus the job itself while it is not final. */
export interface JobRecord {
  job: EmailJob
  status: JobStatusName
  attempts: number
  /** Epoch ms when a scheduled, retrying or throttled job is due; 0 for none. */
  dueAt: number
  /** Order among queued jobs of one priority: the stream entry id, in effect. */
  seq: number
  /** Epoch ms when the job entered its send stream: for `oldestWaitingMs`. */
  queuedAt: number
  createdAt: number
  updatedAt: number
  messageId?: string
  error?: string
  sentAt?: number
  /** Epoch ms when a final status expires (the status TTL). */
  expiresAt?: number
}

export interface StoreConfig {
  /** Epoch ms the clock starts at. */
  startAt: number
  statusTtlSeconds: number
  idempotencyTtlSeconds: number
}

/** Statuses of jobs waiting in the delayed set. */
export const DELAYED: ReadonlySet<JobStatusName> = new Set(['scheduled', 'retrying', 'throttled'])

export function createJobStore(config: StoreConfig) {
  let now = config.startAt
  let seq = 0
  const records = new Map<string, JobRecord>()
  const idempotency = new Map<string, { id: string; expiresAt: number }>()

  function get(id: string): JobRecord | undefined {
    const record = records.get(id)
    if (record?.expiresAt !== undefined && record.expiresAt <= now) {
      records.delete(id)
      return undefined
    }
    return record
  }

  return {
    now: () => now,
    /** Moves the clock forward (never back). */
    setNow(at: number) {
      now = Math.max(now, at)
    },
    nextSeq: () => ++seq,
    get,
    /** Every live record, in no particular order. */
    all(): JobRecord[] {
      return [...records.keys()].map(get).filter((record): record is JobRecord => record !== undefined)
    },
    /** The job id an idempotency key names, while the key lives. */
    idempotent(key: string): string | undefined {
      const entry = idempotency.get(key)
      if (entry && entry.expiresAt <= now) idempotency.delete(key)
      return entry && entry.expiresAt > now ? entry.id : undefined
    },
    /** A new job, queued or (with `dueAt` > 0) scheduled; as the enqueue script writes it. */
    insert(job: EmailJob, dueAt: number): JobRecord {
      const record: JobRecord = {
        job,
        status: dueAt > 0 ? 'scheduled' : 'queued',
        attempts: 0,
        dueAt,
        seq: ++seq,
        queuedAt: now,
        createdAt: now,
        updatedAt: now,
      }
      records.set(job.id, record)
      if (job.idempotencyKey !== undefined) {
        idempotency.set(job.idempotencyKey, { id: job.id, expiresAt: now + config.idempotencyTtlSeconds * 1000 })
      }
      return record
    },
    /** Puts a record in a final state: its status expires after the status TTL. */
    finish(record: JobRecord, status: JobStatusName) {
      record.status = status
      record.dueAt = 0
      record.updatedAt = now
      record.expiresAt = now + config.statusTtlSeconds * 1000
    },
    /** A dead job sent again: a fresh queued record under its id, its idempotency key left alone. */
    requeue(job: EmailJob): JobRecord {
      const record: JobRecord = {
        job,
        status: 'queued',
        attempts: 0,
        dueAt: 0,
        seq: ++seq,
        queuedAt: now,
        createdAt: now,
        updatedAt: now,
      }
      records.set(job.id, record)
      return record
    },
  }
}

export type JobStore = ReturnType<typeof createJobStore>

/** A record as `getStatus` reports it: the fields `parseStatus` reads from a status hash. */
export function stateOf(record: JobRecord): JobState {
  const state: JobState = {
    id: record.job.id,
    status: record.status,
    type: record.job.type,
    priority: record.job.priority as Priority,
    attempts: record.attempts,
    maxAttempts: record.job.maxAttempts,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  }
  if (record.job.batchId !== undefined) state.batchId = record.job.batchId
  if (record.messageId !== undefined) state.messageId = record.messageId
  if (record.error !== undefined) state.error = record.error
  if (record.sentAt !== undefined) state.sentAt = record.sentAt
  if (record.dueAt > 0) state.dueAt = record.dueAt
  return state
}
