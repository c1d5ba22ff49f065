import { PRIORITIES, type Priority } from '../job.js'
import { GROUP, type QueueKeys, workerConnectionName } from '../keys.js'
import { isCluster, type RedisClient } from '../redis.js'

export interface StreamStats {
  /** Entries in the stream: waiting plus delivered-but-unacknowledged. */
  length: number
  /** Delivered to a worker and not yet acknowledged. */
  pending: number
  /** Waiting, never delivered. */
  waiting: number
  /** The consumer group's lag: entries not yet delivered to any worker (the same number as `waiting`). */
  lag: number
  /** How long the oldest waiting entry has waited, ms (0 when nothing waits). */
  oldestWaitingMs: number
  /**
   * Live consumers (workers) of the stream: those whose worker is connected to Redis (its blocking
   * connection is named `mailstream:<consumer>`, found with CLIENT LIST, as BullMQ finds its
   * workers), and those that hold entries. A worker that stopped cleanly leaves the group; one that
   * crashed or was stopped hard stops counting once its connection is gone and it holds nothing.
   * Where CLIENT LIST is not allowed, a consumer counts when it holds entries or received an
   * entry within `LIVE_CONSUMER_IDLE_MS`.
   */
  consumers: number
}

/**
 * Without CLIENT LIST, a consumer that holds nothing counts while it received an entry within this
 * long (2 min). Redis before 7.2 resets a consumer's idle time only when it receives entries.
 */
export const LIVE_CONSUMER_IDLE_MS = 120_000

/**
 * Totals since the queue began. The first five are written by workers (one per job outcome);
 * the rest by the SES webhook handler, each at most once per sent message.
 */
export interface DeliveryTotals {
  sent: number
  /** Jobs that went to the dead letters. */
  failed: number
  suppressed: number
  /** Transient failures that were retried. */
  retried: number
  throttled: number
  delivered: number
  /** Messages with at least one bounce, of any bounce type. */
  bounced: number
  /** Messages with a permanent (hard) bounce. */
  bouncedPermanent: number
  complained: number
  /** Messages opened at least once. */
  opened: number
  /** Messages with at least one click. */
  clicked: number
  rejected: number
  renderingFailed: number
  deliveryDelayed: number
  /**
   * Advertising messages sent (jobs with `advertising`, the Korean advertising profile, docs/korea.md):
   * part of `sent`, as `mailstream_advertising_sent_total` is in `queue.metrics()`.
   */
  advertisingSent: number
}

/** Fractions of `sent` (0 to 1; 0 when nothing was sent). */
export interface DeliveryRates {
  deliveryRate: number
  bounceRate: number
  complaintRate: number
  openRate: number
  clickRate: number
}

export interface QueueStats {
  streams: Record<Priority, StreamStats>
  /** Jobs scheduled for later (delayMs/sendAt, retries, throttled). */
  delayed: number
  dead: number
  suppressed: number
  totals: DeliveryTotals
  rates: DeliveryRates
}

export type BatchTotals = Omit<DeliveryTotals, 'retried' | 'throttled' | 'advertisingSent'>

export interface BatchStats {
  batchId: string
  /** Jobs enqueued in the batch so far. */
  total: number
  cancelled: number
  /** Every job of a sealed batch has finished. */
  finished: boolean
  totals: BatchTotals
  rates: DeliveryRates
}

/** The `P:metrics` counter of advertising messages sent (the workers count it with their histograms). */
export const ADVERTISING_SENT = 'advertising:sent'

/** Counters the workers keep in `P:stats`, one per job outcome. */
export const WORKER_TOTALS = ['sent', 'failed', 'suppressed', 'retried', 'throttled'] as const
/** Counters the SES webhook handler keeps, in `P:stats` and in each batch hash. */
export const EVENT_TOTALS = [
  'delivered',
  'bounced',
  'bouncedPermanent',
  'complained',
  'opened',
  'clicked',
  'rejected',
  'renderingFailed',
  'deliveryDelayed',
] as const

const count = (value: string | null | undefined): number => {
  const number = Number(value ?? 0)
  return Number.isFinite(number) ? number : 0
}

function toRecord(flat: unknown[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1] == null ? '' : String(flat[i + 1])
  return out
}

export function ratesOf(totals: Pick<DeliveryTotals, 'sent' | (typeof EVENT_TOTALS)[number]>): DeliveryRates {
  const of = (value: number) => (totals.sent > 0 ? value / totals.sent : 0)
  return {
    deliveryRate: of(totals.delivered),
    bounceRate: of(totals.bounced),
    complaintRate: of(totals.complained),
    openRate: of(totals.opened),
    clickRate: of(totals.clicked),
  }
}

/** Milliseconds on the Redis server's clock, which also stamps stream entry ids. */
async function redisNow(client: RedisClient): Promise<number> {
  const [seconds, micros] = await client.time()
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
}

async function streamStats(
  client: RedisClient,
  stream: string,
  now: number,
  connected: () => Promise<ReadonlySet<string> | undefined>,
): Promise<StreamStats> {
  const length = await client.xlen(stream)
  let groups: unknown[] = []
  try {
    groups = (await client.xinfo('GROUPS', stream)) as unknown[]
  } catch {
    // No stream yet.
  }
  const group = groups.map((raw) => toRecord(raw as unknown[])).find((info) => info.name === GROUP)
  const pending = group ? count(group.pending) : 0
  // Redis reports no lag after deletions inside the stream; acknowledged entries are deleted, so
  // what is left is either pending or waiting.
  const lag = group && group.lag !== undefined && group.lag !== '' ? count(group.lag) : length - pending
  const waiting = Math.max(0, lag)
  let oldestWaitingMs = 0
  if (waiting > 0) {
    const start = group?.['last-delivered-id'] ? `(${group['last-delivered-id']}` : '-'
    const [first] = await client.xrange(stream, start, '+', 'COUNT', 1)
    if (first) oldestWaitingMs = Math.max(0, now - Number(first[0].split('-')[0]))
  }
  const consumers = group && count(group.consumers) > 0 ? await liveConsumers(client, stream, connected) : 0
  return { length, pending, waiting, lag: waiting, oldestWaitingMs, consumers }
}

/** Names of the connections to Redis now; undefined when CLIENT LIST is not allowed. */
async function connectedWorkers(client: RedisClient): Promise<Set<string> | undefined> {
  const nodes: { client(subcommand: 'LIST'): Promise<unknown> }[] = isCluster(client)
    ? client.nodes('master')
    : [client]
  const names = new Set<string>()
  try {
    for (const node of nodes) {
      for (const match of String(await node.client('LIST')).matchAll(/(?:^|\s)name=(\S+)/g)) {
        const name = match[1] as string
        names.add(name)
      }
    }
  } catch {
    return undefined
  }
  return names
}

/** Consumers of the group that hold entries or whose worker is connected (see `StreamStats.consumers`). */
async function liveConsumers(
  client: RedisClient,
  stream: string,
  connectedNow: () => Promise<ReadonlySet<string> | undefined>,
): Promise<number> {
  let rows: unknown[] = []
  try {
    rows = (await client.xinfo('CONSUMERS', stream, GROUP)) as unknown[]
  } catch {
    // The stream or its group went away since XINFO GROUPS.
  }
  const connected = await connectedNow()
  return rows
    .map((raw) => toRecord(raw as unknown[]))
    .filter(
      (consumer) =>
        count(consumer.pending) > 0 ||
        (connected
          ? connected.has(workerConnectionName(consumer.name as string))
          : count(consumer.idle) < LIVE_CONSUMER_IDLE_MS),
    ).length
}

/** `queue.stats()`: streams, delayed and dead jobs, the suppression list, totals and rates. */
export async function queueStats(client: RedisClient, keys: QueueKeys): Promise<QueueStats> {
  const now = await redisNow(client)
  // CLIENT LIST only when some stream has consumers to tell apart, and once for all of them.
  let listed: Promise<Set<string> | undefined> | undefined
  const connected = () => {
    listed ??= connectedWorkers(client)
    return listed
  }
  const [streams, delayed, dead, suppressed, stored, advertisingSent] = await Promise.all([
    Promise.all(keys.streams.map((stream) => streamStats(client, stream, now, connected))),
    client.zcard(keys.delayed),
    client.xlen(keys.dead),
    client.hlen(keys.suppressed),
    client.hgetall(keys.stats),
    client.hget(keys.metrics, ADVERTISING_SENT),
  ])
  const totals = {} as DeliveryTotals
  for (const field of [...WORKER_TOTALS, ...EVENT_TOTALS]) totals[field] = count(stored[field])
  totals.advertisingSent = count(advertisingSent)
  return {
    streams: Object.fromEntries(PRIORITIES.map((priority, index) => [priority, streams[index]])) as Record<
      Priority,
      StreamStats
    >,
    delayed,
    dead,
    suppressed,
    totals,
    rates: ratesOf(totals),
  }
}

/** `queue.batchStats(batchId)`: the batch's counters and rates, or null for an unknown batch. */
export async function batchStats(client: RedisClient, keys: QueueKeys, batchId: string): Promise<BatchStats | null> {
  const stored = await client.hgetall(keys.batch(batchId))
  if (Object.keys(stored).length === 0) return null
  const totals = {
    sent: count(stored.sent),
    failed: count(stored.failed),
    suppressed: count(stored.suppressed),
  } as BatchTotals
  for (const field of EVENT_TOTALS) totals[field] = count(stored[field])
  return {
    batchId,
    total: count(stored.total),
    cancelled: count(stored.cancelled),
    finished: stored.finishedAt !== undefined,
    totals,
    rates: ratesOf(totals),
  }
}
