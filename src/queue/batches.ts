import { AB_STATE_FIELDS, type AbTestState, abTestState } from '../ab-test/state.js'
import { MailstreamError } from '../errors.js'
import type { QueueKeys } from '../keys.js'
import { addCancel, parseCancelReply } from '../lua/cancel.js'
import { type BatchCounters, countersFromReply, sealBatch } from '../lua/seal-batch.js'
import { bounded, type OutageReporter, quit, type RedisClient } from '../redis.js'
import { STATUS } from '../status.js'

/** What is published on `P:progress:<batchId>`. */
export interface BatchProgress {
  batchId: string
  /** sent + failed + suppressed + cancelled */
  completed: number
  total: number
  /** completed / total, 0-100, two decimals. */
  percentage: number
  sent: number
  failed: number
  suppressed: number
  cancelled: number
  /** True on the one final message of a batch. */
  done: boolean
}

export function toProgress(batchId: string, counters: BatchCounters): BatchProgress {
  const completed = counters.sent + counters.failed + counters.suppressed + counters.cancelled
  const percentage = counters.finished
    ? 100
    : counters.total === 0
      ? 0
      : Math.min(100, Math.floor((completed * 10_000) / counters.total) / 100)
  return {
    batchId,
    completed,
    total: counters.total,
    percentage,
    sent: counters.sent,
    failed: counters.failed,
    suppressed: counters.suppressed,
    cancelled: counters.cancelled,
    done: counters.finished,
  }
}

/** `getBatch`: a batch's counters, progress and where it stands. */
export interface BatchState extends BatchProgress {
  /**
   * `enqueueing` while jobs are still being added, `sending` once every job is enqueued,
   * `finished` when every job has finished, `cancelled` after `cancelBatch`.
   */
  state: 'enqueueing' | 'sending' | 'finished' | 'cancelled'
  /** Epoch ms, when `enqueueBatch` began (absent for batches built with `enqueueMany`). */
  createdAt?: number
  /** An advertising batch (`enqueueBatch` with `advertising: true`, docs/korea.md). */
  advertising?: true
  finishedAt?: number
  cancelledAt?: number
  /** A/B test batches: the variants' counts and rates, and the decision with its numbers once made. */
  abTest?: AbTestState
}

export async function getBatch(client: RedisClient, keys: QueueKeys, batchId: string): Promise<BatchState | null> {
  const fields = [
    'total',
    'sent',
    'failed',
    'suppressed',
    'cancelled',
    'sealed',
    'finishedAt',
    'createdAt',
    'cancelledAt',
    'advertising',
  ]
  const values = await client.hmget(keys.batch(batchId), ...fields, ...AB_STATE_FIELDS)
  if (values.every((value) => value === null)) return null
  const abTest = abTestState(values.slice(fields.length))
  const hash = Object.fromEntries(fields.map((field, index) => [field, values[index] ?? undefined]))
  const counters = countersFromReply([
    hash.total ?? 0,
    hash.sent ?? 0,
    hash.failed ?? 0,
    hash.suppressed ?? 0,
    hash.cancelled ?? 0,
  ])
  counters.finished = hash.finishedAt !== undefined
  const state: BatchState = {
    ...toProgress(batchId, counters),
    state: hash.cancelledAt
      ? 'cancelled'
      : counters.finished
        ? 'finished'
        : hash.sealed === '1'
          ? 'sending'
          : 'enqueueing',
  }
  for (const field of ['createdAt', 'finishedAt', 'cancelledAt'] as const) {
    if (hash[field] !== undefined) state[field] = Number(hash[field])
  }
  if (abTest) state.abTest = abTest
  if (hash.advertising === '1') state.advertising = true
  return state
}

const PAGE = 1000

function fieldOf(fields: string[], name: string): string {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] as string
  return ''
}

/**
 * Cancels every job of a batch that has not started sending: marks the batch cancelled (the
 * enqueue script then refuses its new jobs), cancels its entries in the send streams and its
 * scheduled jobs one by one with the `cancel` script (which leaves jobs being sent alone), and
 * seals the batch so that its final progress is published once the jobs in flight finish.
 * Resolves how many jobs were cancelled; 0 for an unknown batch.
 */
export async function cancelBatch(
  client: RedisClient,
  keys: QueueKeys,
  batchId: string,
  statusTtlSeconds: number,
): Promise<number> {
  const batchKey = keys.batch(batchId)
  if ((await client.exists(batchKey)) === 0) return 0
  await client.hsetnx(batchKey, 'cancelledAt', Date.now())
  const idPrefix = `${batchId}:`
  const marker = `"batchId":${JSON.stringify(batchId)}`
  let cancelled = 0

  async function cancelJobs(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    const now = Date.now()
    const pipeline = client.pipeline()
    for (const id of ids) addCancel(pipeline, keys, { id, batchId, now, statusTtlSeconds })
    for (const [error, reply] of (await pipeline.exec()) ?? []) {
      if (error) throw new MailstreamError('E_REDIS', `cancelBatch failed: ${error.message}`, { cause: error })
      if (parseCancelReply(reply).cancelled) cancelled++
    }
  }

  // Waiting entries: ids made by enqueueBatch start with the batch id; others carry it in the payload.
  for (const stream of keys.streams) {
    let start = '-'
    for (;;) {
      const page = await client.xrange(stream, start, '+', 'COUNT', PAGE)
      const ids: string[] = []
      for (const [, fields] of page) {
        const id = fieldOf(fields, 'id')
        if (id.startsWith(idPrefix) || fieldOf(fields, 'job').includes(marker)) ids.push(id)
      }
      await cancelJobs(ids)
      if (page.length < PAGE) break
      start = `(${(page[page.length - 1] as [string, string[]])[0]}`
    }
  }

  // Scheduled and retrying jobs: ZSCAN is safe while members are removed (one may come twice).
  let cursor = '0'
  do {
    const [next, flat] = await client.zscan(keys.delayed, cursor, 'COUNT', PAGE)
    cursor = next
    const ids: string[] = []
    const unsure: string[] = []
    for (let i = 0; i < flat.length; i += 2) {
      const id = flat[i] as string
      if (id.startsWith(idPrefix)) ids.push(id)
      else unsure.push(id)
    }
    if (unsure.length > 0) {
      const pipeline = client.pipeline()
      for (const id of unsure) pipeline.hget(keys.status(id), STATUS.batch)
      const replies = (await pipeline.exec()) ?? []
      unsure.forEach((id, index) => {
        if (replies[index]?.[1] === batchId) ids.push(id)
      })
    }
    await cancelJobs(ids)
  } while (cursor !== '0')

  await sealBatch(client, keys, batchId)
  return cancelled
}

/** `onProgress` returns this: call it to stop listening. */
export interface ProgressSubscription {
  (): void
  /** Resolves once Redis has confirmed the subscription: no message published after that is missed. */
  readonly ready: Promise<void>
}

/**
 * Progress listeners of a queue, on one subscriber connection duplicated from the queue's client
 * (a subscribed connection can do nothing else), opened with the first listener and closed with
 * the last one or by `close()`. A listener gets each batch's messages in rising order of
 * `completed`: a late message from a slower worker is dropped, and nothing comes after `done`.
 * `ready` and `close()` settle within `timeoutMs`; the connection's outages go to `reporter`.
 */
export function createProgressListeners(
  client: RedisClient,
  keys: QueueKeys,
  { timeoutMs, reporter }: { timeoutMs: number; reporter: OutageReporter },
) {
  let unwatch: (() => void) | undefined
  let subscriber: RedisClient | undefined
  const channels = new Map<
    string,
    {
      batchId: string
      listeners: Set<(progress: BatchProgress) => void>
      ready: Promise<void>
      completed: number
      done: boolean
    }
  >()

  function connection(): RedisClient {
    if (subscriber) return subscriber
    const connection = client.duplicate() as RedisClient
    connection.on('error', () => {
      // ioredis reconnects and subscribes again by itself.
    })
    unwatch = reporter.watch(connection)
    connection.on('message', (channel: string, message: string) => {
      const entry = channels.get(channel)
      if (!entry || entry.done) return
      let progress: BatchProgress
      try {
        progress = JSON.parse(message)
      } catch {
        return
      }
      if (!progress.done && progress.completed <= entry.completed) return
      entry.completed = progress.completed
      entry.done = progress.done === true
      for (const listener of [...entry.listeners]) {
        try {
          listener(progress)
        } catch {
          // A listener that throws does not stop the others or the connection.
        }
      }
    })
    subscriber = connection
    return connection
  }

  function closeConnection(): Promise<void> {
    const connection = subscriber
    subscriber = undefined
    if (!connection) return Promise.resolve()
    unwatch?.()
    unwatch = undefined
    return quit(connection, timeoutMs)
  }

  return {
    on(batchId: string, listener: (progress: BatchProgress) => void): ProgressSubscription {
      const channel = keys.progress(batchId)
      let entry = channels.get(channel)
      if (!entry) {
        const ready = bounded(connection().subscribe(channel), timeoutMs, 'onProgress').then(() => undefined)
        ready.catch(() => {})
        entry = { batchId, listeners: new Set(), ready, completed: -1, done: false }
        channels.set(channel, entry)
      }
      const current = entry
      // The same function added twice is two listeners: wrap it so that each unsubscribes alone.
      const wrapped = (progress: BatchProgress) => listener(progress)
      current.listeners.add(wrapped)
      const unsubscribe = () => {
        if (!current.listeners.delete(wrapped) || current.listeners.size > 0) return
        channels.delete(channel)
        if (channels.size === 0) void closeConnection()
        else if (subscriber) bounded(subscriber.unsubscribe(channel), timeoutMs, 'unsubscribe').catch(() => {})
      }
      return Object.assign(unsubscribe, { ready: current.ready })
    },
    close(): Promise<void> {
      channels.clear()
      return closeConnection()
    },
  }
}
