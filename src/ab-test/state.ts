// What an A/B test keeps in its batch hash, and the decision and drain that finish it.

import { MailstreamError } from '../errors.js'
import type { QueueKeys } from '../keys.js'
import { abDecide, abTrim } from '../lua/ab-test.js'
import { type EnqueueRecord, enqueue } from '../lua/enqueue.js'
import { sealBatch } from '../lua/seal-batch.js'
import { type BatchTemplate, toBatchRecord } from '../queue/batch-input.js'
import type { RedisClient } from '../redis.js'
import { type AbDecision, type AbMetric, decideAbTest, rateOf, type VariantCounts } from './decision.js'

/** Batch hash fields: the test as set (small, for getBatch), the variants' templates (for the drain). */
export const AB_FIELD = 'ab'
export const AB_TEMPLATES_FIELD = 'ab:templates'
/** Variants a test may have (options.ts checks 2-5). */
export const MAX_VARIANTS = 5

/** The `ab` field: what getBatch shows and the decision needs. */
export interface StoredAbTest {
  share: number
  metric: AbMetric
  minSample: number
  decideAfterMs: number
  /** Epoch ms. */
  decideAt: number
  variants: { subject?: string; template?: string }[]
  /** The test as first given (JSON): a later call for the same batch must give the same. */
  spec: string
}

/** The `ab:templates` field: per variant, the shared part of its jobs and the data it adds. */
export interface StoredAbTemplates {
  templates: BatchTemplate[]
  data: (Record<string, unknown> | null)[]
}

export interface AbVariantState {
  index: number
  subject?: string
  template?: string
  sent: number
  /** Unique human opens. */
  opened: number
  clicked: number
  /** opened / sent (0-1). */
  openRate: number
  clickRate: number
}

/** `getBatch(...).abTest`. */
export interface AbTestState {
  share: number
  metric: AbMetric
  minSample: number
  /** Epoch ms: when the winner is chosen (a worker does it at this time, or `decideAbTest`). */
  decideAt: number
  /** `testing` until the decision, `sending-winner` while the rest is enqueued, `done` after. */
  state: 'testing' | 'sending-winner' | 'done'
  /** Recipients held back for the winner (a repeated enqueueBatch call counts its own again). */
  held: number
  /** Of them, enqueued with the winner so far. */
  released: number
  variants: AbVariantState[]
  decision?: AbDecision
}

const counterFields = (): string[] => {
  const fields: string[] = []
  for (let v = 0; v < MAX_VARIANTS; v++) fields.push(`ab:v${v}:sent`, `ab:v${v}:opened`, `ab:v${v}:clicked`)
  return fields
}
/** Fields getBatch reads for a test, after its own. */
export const AB_STATE_FIELDS = [AB_FIELD, 'ab:decision', 'ab:held', 'ab:trimmed', 'ab:drainedAt', ...counterFields()]

const num = (value: string | null | undefined): number => Number(value ?? 0) || 0

function countsOf(values: readonly (string | null)[], variants: number, from: number): VariantCounts[] {
  return Array.from({ length: variants }, (_, v) => ({
    sent: num(values[from + 3 * v]),
    opened: num(values[from + 3 * v + 1]),
    clicked: num(values[from + 3 * v + 2]),
  }))
}

/** The test's state from the values of AB_STATE_FIELDS (in order); undefined for a batch without a test. */
export function abTestState(values: readonly (string | null)[]): AbTestState | undefined {
  const [ab, decision, held, trimmed, drainedAt] = values
  if (!ab) return undefined
  const stored = JSON.parse(ab) as StoredAbTest
  const counts = countsOf(values, stored.variants.length, 5)
  const state: AbTestState = {
    share: stored.share,
    metric: stored.metric,
    minSample: stored.minSample,
    decideAt: stored.decideAt,
    state: drainedAt ? 'done' : decision ? 'sending-winner' : 'testing',
    held: num(held),
    released: num(trimmed),
    variants: stored.variants.map((variant, index) => {
      const count = counts[index] as VariantCounts
      return {
        index,
        ...variant,
        ...count,
        openRate: rateOf(count, 'opens'),
        clickRate: rateOf(count, 'clicks'),
      }
    }),
  }
  if (decision) state.decision = JSON.parse(decision) as AbDecision
  return state
}

/** One held recipient as stored in the holdout list. */
export interface HeldRecipient {
  to: { name?: string; address: string }
  data?: Record<string, unknown>
  locale?: string
}

/** A recipient's build output with a variant's data under its own. */
export function withVariantData(built: unknown, data: Record<string, unknown> | null | undefined): unknown {
  if (!data) return built
  if (typeof built === 'object' && built !== null && 'to' in built) {
    const fields = built as { data?: unknown }
    const own = typeof fields.data === 'object' && fields.data !== null ? fields.data : {}
    return { ...built, data: { ...data, ...own } }
  }
  return { to: built, data }
}

/** Chunk of held recipients enqueued per round (one LRANGE, ten enqueue calls, one trim). */
const DRAIN_CHUNK = 1000

const sendNow = (): number => 0

/** The winner's records for held recipients; a held entry that no longer builds is skipped. */
export function winnerRecords(
  template: BatchTemplate,
  data: Record<string, unknown> | null | undefined,
  entries: readonly string[],
  now: number,
): EnqueueRecord[] {
  const records: EnqueueRecord[] = []
  for (const [index, entry] of entries.entries()) {
    try {
      // Stored as JSON, the template has lost its due-time function: the winner goes out now.
      const record = toBatchRecord({ ...template, due: sendNow }, withVariantData(JSON.parse(entry), data), index)
      if (record.dueAt <= now) record.dueAt = 0
      records.push(record)
    } catch {
      // Checked when it was held: only a corrupted entry lands here, and it must not stop the rest.
    }
  }
  return records
}

export interface RunAbTestResult {
  decision: AbDecision
  /** The holdout list is empty and the batch sealed. */
  done: boolean
  /** Recipients enqueued with the winner by this call (new jobs; duplicates not counted). */
  enqueued: number
}

/**
 * Decides a batch's test (once: a decision recorded earlier stands) and enqueues the held
 * recipients with the winner, `maxChunks` chunks at most (then `done` is false: call again).
 * Each chunk is enqueued under the same per-recipient job ids, then trimmed from the list only if
 * no other drain trimmed it meanwhile: a drain that dies or runs twice sends nobody twice.
 * When the list is empty the batch is sealed and the test leaves the due set. Null for a batch
 * without a test. Every call goes through `client`, whose replies the caller bounds.
 */
export async function runAbTest(
  client: RedisClient,
  keys: QueueKeys,
  batchId: string,
  { now = Date.now(), maxChunks = Number.POSITIVE_INFINITY }: { now?: number; maxChunks?: number } = {},
): Promise<RunAbTestResult | null> {
  const batchKey = keys.batch(batchId)
  const values = await client.hmget(batchKey, ...AB_STATE_FIELDS, 'cancelledAt')
  const state = abTestState(values)
  if (!state) return null
  let decision = state.decision
  if (!decision) {
    const counts = state.variants.map(({ sent, opened, clicked }) => ({ sent, opened, clicked }))
    const decided = decideAbTest(counts, state.metric, state.minSample, now)
    decision = JSON.parse(await abDecide(client, keys, batchId, JSON.stringify(decided), decided.winner)) as AbDecision
  }
  const result: RunAbTestResult = { decision, done: false, enqueued: 0 }
  if (state.state === 'done') return { ...result, done: true }
  const cancelled = values.at(-1) !== null
  const stored = JSON.parse((await client.hget(batchKey, AB_TEMPLATES_FIELD)) ?? 'null') as StoredAbTemplates | null
  const template = stored?.templates[decision.winner]
  if (!template) {
    throw new MailstreamError('E_NOT_FOUND', `batch ${batchId}: the A/B test's variants are missing from Redis`)
  }
  for (let chunk = 0; chunk < maxChunks && !cancelled; chunk++) {
    // The count first: a trim by another drain after it makes this one's trim a no-op, never a loss.
    const trimmed = await client.hget(batchKey, 'ab:trimmed')
    const entries = await client.lrange(keys.abRest(batchId), 0, DRAIN_CHUNK - 1)
    if (entries.length === 0) break
    const records = winnerRecords(template, stored?.data[decision.winner], entries, Date.now())
    const replies = await enqueue(client, keys, { now: Date.now(), idempotencyTtlSeconds: 1, records })
    if (replies.some((reply) => reply.created === 'cancelled')) break
    result.enqueued += replies.filter((reply) => reply.created === 'new').length
    await abTrim(client, keys, batchId, num(trimmed), entries.length)
    if (chunk + 1 >= maxChunks) return result
  }
  // Empty (or cancelled: the held recipients are never sent): seal, and the test is over.
  await client.del(keys.abRest(batchId))
  await sealBatch(client, keys, batchId)
  await client.hsetnx(batchKey, 'ab:drainedAt', Date.now())
  await client.zrem(keys.abTests, batchId)
  return { ...result, done: true }
}
