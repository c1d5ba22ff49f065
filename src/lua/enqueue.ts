import type { ChainableCommander } from 'ioredis'
import type { Priority } from '../job.js'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { addScript, runScript } from './index.js'

/** One job as the `enqueue` script takes it. None of the text fields but `payload` may hold a space. */
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
  idempotencyKey?: string
}

export interface EnqueueCall {
  /** Epoch ms, the jobs' createdAt. */
  now: number
  idempotencyTtlSeconds: number
  records: readonly EnqueueRecord[]
}

/**
 * What the script did with one job: 1 a new job, 0 a duplicate (the id or the idempotency key
 * named a job already: `id` is that job's, `status` '' when only the key was found), 2 refused
 * because its batch was cancelled (`status` 'cancelled', nothing written).
 */
export interface EnqueuedJob {
  id: string
  status: string
  created: 0 | 1 | 2
}

function pack(keys: QueueKeys, { now, idempotencyTtlSeconds, records }: EnqueueCall) {
  const scriptKeys: string[] = [keys.delayed, ...keys.streams]
  const args: (string | number)[] = [now, idempotencyTtlSeconds]
  for (const record of records) {
    const statusKey = keys.status(record.id)
    const idem = record.idempotencyKey !== undefined
    scriptKeys.push(
      statusKey,
      idem ? keys.idem(record.idempotencyKey as string) : statusKey,
      record.batchId !== '' ? keys.batch(record.batchId) : statusKey,
    )
    args.push(
      record.id,
      record.payload,
      `${record.dueAt} ${record.priority} ${record.type} ${record.maxAttempts} ${record.batchId} ${record.rcpt} ${idem ? '1' : '0'}`,
    )
  }
  return { scriptKeys, args }
}

/** The reply of one `enqueue` call (flat `id, status, created` per job), one entry per job in order. */
export function enqueueReply(reply: unknown): EnqueuedJob[] {
  const flat = reply as (string | number)[]
  const out: EnqueuedJob[] = []
  for (let i = 0; i + 2 < flat.length; i += 3) {
    out.push({ id: String(flat[i]), status: String(flat[i + 1]), created: Number(flat[i + 2]) as 0 | 1 | 2 })
  }
  return out
}

/** `lua/enqueue.lua`: writes jobs (many per call); their replies in order. */
export async function enqueue(client: RedisClient, keys: QueueKeys, call: EnqueueCall): Promise<EnqueuedJob[]> {
  const { scriptKeys, args } = pack(keys, call)
  return enqueueReply(await runScript<unknown>(client, 'enqueue', scriptKeys, args))
}

/** Adds one `enqueue` call to a pipeline; read its reply from `exec` with `enqueueReply`. */
export function addEnqueue(pipeline: ChainableCommander, keys: QueueKeys, call: EnqueueCall): void {
  const { scriptKeys, args } = pack(keys, call)
  addScript(pipeline, 'enqueue', scriptKeys, args)
}
