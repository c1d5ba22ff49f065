import type { Priority } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { DeadLetter, QueueStats } from '../queue/index.js'
import { isCluster, type RedisClient } from '../redis.js'
import type { FailoverTransportStats } from '../transports/failover.js'

/** `GET api/stats`: `queue.stats()` and the sums the page shows. */
export interface DashboardStats extends QueueStats {
  /** Epoch ms when the stats were read. */
  at: number
  /** Entries waiting in the three send streams. */
  waiting: number
  /** Entries delivered to a worker and not yet acknowledged (pending), in the three send streams. */
  inFlight: number
  /** Jobs sent and failed per second over the last minute this dashboard read stats; null until it has two reads. */
  throughput: Throughput | null
  /** With the `transports` option: per failover transport, its members' breakers and sends in this process. */
  failover?: { name: string; transports: FailoverTransportStats[] }[]
}

/** `GET api/providers`: per provider, jobs parked for its pace and slow-downs after its rate replies. */
export interface ProviderPacing {
  provider: string
  parked: number
  slowDowns: number
}

export interface Throughput {
  /** The span the rates are measured over, ms (at most one minute). */
  windowMs: number
  sentPerSecond: number
  failedPerSecond: number
}

/**
 * A dead letter as the dashboard shows it: who, what and why, never the body, data or
 * attachments (data can hold secrets such as verification codes).
 */
export interface DeadLetterSummary {
  entryId: string
  id: string
  type?: string
  priority?: Priority
  batchId?: string
  /** Recipient addresses (to, cc, bcc). */
  to: string[]
  subject?: string
  template?: string
  error: string
  attempts: number
  failedAt: number
}

/** A job whose last attempt failed and that waits in the delayed set for its next one. */
export interface RetryingJob {
  id: string
  status: 'retrying' | 'throttled'
  type?: string
  priority?: Priority
  batchId?: string
  attempts: number
  maxAttempts: number
  error?: string
  /** When the next attempt is due, epoch ms. */
  dueAt?: number
  /** When the failure was recorded, epoch ms. */
  updatedAt: number
  recipients: string[]
}

export function summariseDeadLetter(letter: DeadLetter): DeadLetterSummary {
  const job = letter.job
  const summary: DeadLetterSummary = {
    entryId: letter.entryId,
    id: letter.id,
    to: job ? [...job.to, ...(job.cc ?? []), ...(job.bcc ?? [])].map((address) => address.address) : [],
    error: letter.error,
    attempts: letter.attempts,
    failedAt: letter.failedAt,
  }
  if (job?.type !== undefined) summary.type = job.type
  if (job?.priority !== undefined) summary.priority = job.priority
  if (job?.batchId !== undefined) summary.batchId = job.batchId
  if (job?.subject !== undefined) summary.subject = job.subject
  if (job?.template !== undefined) summary.template = job.template
  return summary
}

const RETRY_FIELDS = [
  'status',
  'type',
  'priority',
  'batch',
  'attempts',
  'maxAttempts',
  'error',
  'dueAt',
  'updatedAt',
  'rcpt',
]

/**
 * Jobs that failed an attempt and wait for the next, most recent failure first. Reads only the
 * `window` soonest-due members of the delayed set and their status hashes (one pipeline), so it
 * stays cheap however many jobs are scheduled; a retry due later than `window` scheduled jobs is
 * not listed.
 */
export async function listRetrying(
  client: RedisClient,
  keys: QueueKeys,
  count: number,
  window = 500,
): Promise<RetryingJob[]> {
  const ids = await client.zrange(keys.delayed, 0, window - 1)
  if (ids.length === 0) return []
  const pipeline = client.pipeline()
  for (const id of ids) pipeline.hmget(keys.status(id), ...RETRY_FIELDS)
  const replies = (await pipeline.exec()) ?? []
  const jobs: RetryingJob[] = []
  ids.forEach((id, index) => {
    const [error, values] = replies[index] ?? []
    if (error || !Array.isArray(values)) return
    const hash = Object.fromEntries(RETRY_FIELDS.map((field, i) => [field, (values[i] as string | null) ?? undefined]))
    if (hash.status !== 'retrying' && hash.status !== 'throttled') return
    const job: RetryingJob = {
      id,
      status: hash.status,
      attempts: Number(hash.attempts ?? 0),
      maxAttempts: Number(hash.maxAttempts ?? 0),
      updatedAt: Number(hash.updatedAt ?? 0),
      recipients: hash.rcpt ? hash.rcpt.split(',') : [],
    }
    if (hash.type) job.type = hash.type
    if (hash.priority) job.priority = hash.priority as Priority
    if (hash.batch) job.batchId = hash.batch
    if (hash.error) job.error = hash.error
    if (hash.dueAt) job.dueAt = Number(hash.dueAt)
    jobs.push(job)
  })
  return jobs.sort((a, b) => b.updatedAt - a.updatedAt).slice(0, count)
}

const escapeGlob = (text: string) => text.replace(/[*?[\]\\]/g, '\\$&')

/**
 * The ids of the most recent batches, newest first by `createdAt` (batches made without
 * `enqueueBatch` have none and come last). Finds them with SCAN over `P:batch:*`, examining at
 * most `maxKeys` keys (on every master of a Cluster), so on a very large Redis it may miss some:
 * pass the dashboard a list of batch ids there.
 */
export async function discoverBatches(
  client: RedisClient,
  keys: QueueKeys,
  limit: number,
  maxKeys: number,
): Promise<string[]> {
  const start = keys.batch('')
  const pattern = `${escapeGlob(start)}*`
  const nodes: RedisClient[] = isCluster(client) ? client.nodes('master') : [client]
  const found = new Set<string>()
  let examined = 0
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      for (const key of batch) found.add(key.slice(start.length))
      cursor = next
      examined += 1000
    } while (cursor !== '0' && examined < maxKeys)
    if (examined >= maxKeys) break
  }
  const ids = [...found]
  if (ids.length === 0) return []
  const pipeline = client.pipeline()
  for (const id of ids) pipeline.hget(keys.batch(id), 'createdAt')
  const replies = (await pipeline.exec()) ?? []
  const createdAt = new Map(ids.map((id, index) => [id, Number(replies[index]?.[1] ?? 0) || 0]))
  return ids.sort((a, b) => (createdAt.get(b) ?? 0) - (createdAt.get(a) ?? 0) || a.localeCompare(b)).slice(0, limit)
}

/**
 * Sent and failed jobs per second, from the stats reads of the last `windowMs`. Every read is a
 * sample (at most two a second are kept), so the rate needs no extra Redis call.
 */
export function createThroughputMeter(windowMs = 60_000) {
  const samples: { at: number; sent: number; failed: number }[] = []
  return (at: number, totals: { sent: number; failed: number }): Throughput | null => {
    const last = samples[samples.length - 1]
    // Totals only grow; a drop means the stats were reset: start again.
    if (last && (totals.sent < last.sent || totals.failed < last.failed)) samples.length = 0
    const newest = samples[samples.length - 1]
    if (!newest || at - newest.at >= 500) samples.push({ at, sent: totals.sent, failed: totals.failed })
    while (samples.length > 1 && at - (samples[0] as { at: number }).at > windowMs) samples.shift()
    const first = samples[0]
    if (!first || at - first.at < 1000) return null
    const span = at - first.at
    return {
      windowMs: span,
      sentPerSecond: ((totals.sent - first.sent) * 1000) / span,
      failedPerSecond: ((totals.failed - first.failed) * 1000) / span,
    }
  }
}

const PARKED = 'provider_parked:'
const SLOWDOWN = 'provider_slowdown:'

/**
 * The per-provider pacing counters the workers write into `P:metrics`, busiest first. HSCAN with
 * a MATCH over a hash of a few hundred fields, at most `maxRounds` replies, so it stays bounded.
 */
export async function readProviderPacing(
  client: RedisClient,
  keys: QueueKeys,
  maxRounds = 20,
): Promise<ProviderPacing[]> {
  const providers = new Map<string, ProviderPacing>()
  const of = (provider: string) => {
    let row = providers.get(provider)
    if (!row) {
      row = { provider, parked: 0, slowDowns: 0 }
      providers.set(provider, row)
    }
    return row
  }
  let cursor = '0'
  let rounds = 0
  do {
    const [next, pairs] = await client.hscan(keys.metrics, cursor, 'MATCH', 'provider_*', 'COUNT', 1000)
    for (let i = 0; i + 1 < pairs.length; i += 2) {
      const field = pairs[i] as string
      const value = Number(pairs[i + 1]) || 0
      if (field.startsWith(PARKED)) of(field.slice(PARKED.length)).parked = value
      else if (field.startsWith(SLOWDOWN)) of(field.slice(SLOWDOWN.length)).slowDowns = value
    }
    cursor = next
    rounds++
  } while (cursor !== '0' && rounds < maxRounds)
  return [...providers.values()].sort(
    (a, b) => b.parked + b.slowDowns - (a.parked + a.slowDowns) || a.provider.localeCompare(b.provider),
  )
}
