import { MailstreamError } from '../errors.js'
import type { Priority } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { addScript, runScript } from './index.js'

/** One job as the `enqueue` script takes it. */
export interface EnqueueRecord {
  id: string
  payload: string
  /** Epoch ms; 0 for now. */
  dueAt: number
  priority: Priority
  type: string
  maxAttempts: number
  /** '' for none. */
  batchId: string
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
  idempotencyKey?: string | undefined
  /** Hash of the job's content, stored with its idempotency key; a key stored with another is a conflict. */
  fingerprint?: string | undefined
  /** The W3C traceparent of the enqueue span, stored in the status hash (`trace`); none when not traced. */
  trace?: string | undefined
  /** The index of the job's A/B test variant, stored in the status hash (`variant`); none outside a test. */
  variant?: number | undefined
}

/**
 * What became of one record: `new` (written), `duplicate` (its id or idempotency key named a job
 * already; `status` is '' when only the key was found), `cancelled` (its batch was cancelled,
 * nothing written) or `conflict` (its idempotency key names job `id`, stored with another
 * fingerprint; nothing written).
 */
export interface EnqueueReply {
  id: string
  status: string
  created: 'new' | 'duplicate' | 'cancelled' | 'conflict'
}

export interface EnqueueCall {
  /** Epoch ms. */
  now: number
  idempotencyTtlSeconds: number
  records: readonly EnqueueRecord[]
}

/** Jobs per script call: many per call is what makes a big batch cheap, but a call blocks Redis. */
const JOBS_PER_CALL = 100

/**
 * The optional end of a record's argument: ' <fingerprint>', ' <trace>' after it and ' <variant>'
 * after that ('-' for a missing one before a present one).
 */
function tail(fingerprint: string | undefined, trace: string | undefined, variant: number | undefined): string {
  if (variant !== undefined) return ` ${fingerprint || '-'} ${trace || '-'} ${variant}`
  if (trace === undefined) return fingerprint ? ` ${fingerprint}` : ''
  return ` ${fingerprint || '-'} ${trace}`
}

function pack(keys: QueueKeys, now: number, ttl: number, group: readonly EnqueueRecord[]) {
  const scriptKeys: string[] = [keys.delayed, ...keys.streams]
  const args: (string | number)[] = [now, ttl]
  for (const record of group) {
    const hasKey = record.idempotencyKey !== undefined
    // The idempotency and batch keys only when the job has them: the script reads them by its flags.
    scriptKeys.push(keys.status(record.id))
    if (hasKey) scriptKeys.push(keys.idem(record.idempotencyKey as string))
    if (record.batchId !== '') scriptKeys.push(keys.batch(record.batchId))
    args.push(
      record.id,
      record.payload,
      `${record.dueAt} ${record.priority} ${record.type} ${record.maxAttempts} ${record.batchId} ${record.rcpt} ${hasKey ? '1' : '0'}${tail(hasKey ? record.fingerprint : undefined, record.trace, record.variant)}`,
    )
  }
  return { scriptKeys, args }
}

const CREATED = { 0: 'duplicate', 1: 'new', 2: 'cancelled', 3: 'conflict' } as const

/** Appends the replies of one script call (a flat `id, status, created` list) to `replies`. */
function readReplies(reply: unknown, replies: EnqueueReply[]): void {
  const flat = reply as (string | number)[]
  for (let i = 0; i + 2 < flat.length; i += 3) {
    const created = CREATED[Number(flat[i + 2]) as keyof typeof CREATED] ?? 'duplicate'
    replies.push({ id: String(flat[i]), status: String(flat[i + 1]), created })
  }
}

const scriptError = (error: Error) =>
  new MailstreamError('E_REDIS', `enqueue failed: ${error.message}`, { cause: error })

/**
 * `lua/enqueue.lua`: writes jobs to their send stream or the delayed set, JOBS_PER_CALL per
 * script call, every call in one pipeline (one round trip). One reply per record, in order.
 */
export async function enqueue(client: RedisClient, keys: QueueKeys, call: EnqueueCall): Promise<EnqueueReply[]> {
  if (call.records.length <= JOBS_PER_CALL) return oneCall(client, keys, call)
  const pipeline = client.pipeline()
  for (let from = 0; from < call.records.length; from += JOBS_PER_CALL) {
    const group = call.records.slice(from, from + JOBS_PER_CALL)
    const { scriptKeys, args } = pack(keys, call.now, call.idempotencyTtlSeconds, group)
    addScript(pipeline, 'enqueue', scriptKeys, args)
  }
  const replies: EnqueueReply[] = []
  for (const [error, reply] of (await pipeline.exec()) ?? []) {
    if (error) throw scriptError(error)
    readReplies(reply, replies)
  }
  return replies
}

/**
 * `lua/enqueue.lua` as `enqueue` does it, `perCall` records per script call, every call in one
 * pipeline, but each call settles alone: one reply per record, or the `E_REDIS` error of the
 * record's call. A script stops at its first error with its earlier writes made, so the records of
 * a failed call may be written or not; `perCall: 1` gives every record a call (and an error) of
 * its own. Rejects only when the pipeline as a whole fails.
 */
export async function enqueueSettled(
  client: RedisClient,
  keys: QueueKeys,
  call: EnqueueCall,
  perCall = JOBS_PER_CALL,
): Promise<(EnqueueReply | MailstreamError)[]> {
  if (call.records.length <= perCall) return oneCallSettled(client, keys, call)
  const pipeline = client.pipeline()
  const sizes: number[] = []
  for (let from = 0; from < call.records.length; from += perCall) {
    const group = call.records.slice(from, from + perCall)
    const { scriptKeys, args } = pack(keys, call.now, call.idempotencyTtlSeconds, group)
    addScript(pipeline, 'enqueue', scriptKeys, args)
    sizes.push(group.length)
  }
  const settled: (EnqueueReply | MailstreamError)[] = []
  const replies: EnqueueReply[] = []
  const results = (await pipeline.exec()) ?? []
  sizes.forEach((size, index) => {
    const [error, reply] = results[index] ?? [new Error('the pipeline gave no reply')]
    replies.length = 0
    if (!error) readReplies(reply, replies)
    for (let i = 0; i < size; i++) {
      settled.push(error ? scriptError(error) : (replies[i] ?? scriptError(new Error('the script gave no reply'))))
    }
  })
  return settled
}

/**
 * Records that fit in one script call (a web request's `enqueue`, the calls of one turn, a small
 * `enqueueMany`): the script is called directly, without a pipeline (an ioredis pipeline copies
 * every defined script onto itself, a large part of one call's cost). Rejects as the pipeline's
 * reply for the call would (`E_REDIS`), or with the client's bound (`E_TIMEOUT`), as its `exec` would.
 */
/** The client's own bound (`E_TIMEOUT`): rejects the call as a whole, as a pipeline's `exec` would. */
const isBound = (error: unknown) => error instanceof MailstreamError && error.code === 'E_TIMEOUT'

async function oneCall(client: RedisClient, keys: QueueKeys, call: EnqueueCall): Promise<EnqueueReply[]> {
  const { scriptKeys, args } = pack(keys, call.now, call.idempotencyTtlSeconds, call.records)
  let reply: unknown
  try {
    reply = await runScript(client, 'enqueue', scriptKeys, args)
  } catch (error) {
    throw isBound(error) ? error : scriptError(error as Error)
  }
  const replies: EnqueueReply[] = []
  readReplies(reply, replies)
  return replies
}

/** `enqueueSettled` for one script call: an error of the call settles every record. */
async function oneCallSettled(
  client: RedisClient,
  keys: QueueKeys,
  call: EnqueueCall,
): Promise<(EnqueueReply | MailstreamError)[]> {
  let replies: EnqueueReply[]
  try {
    replies = await oneCall(client, keys, call)
  } catch (error) {
    if (isBound(error)) throw error
    return call.records.map(() => error as MailstreamError)
  }
  return call.records.map((_, i) => replies[i] ?? scriptError(new Error('the script gave no reply')))
}
