import type { ChainableCommander } from 'ioredis'
import { GROUP, type QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { addScript, runScript } from './index.js'

export interface CancelCall {
  id: string
  /** The batch id the caller read from the job's status ('' for none). */
  batchId: string
  /** Epoch ms. */
  now: number
  statusTtlSeconds: number
}

/**
 * `before` is the status the job had ('' for an unknown job, 'active' when a worker holds it,
 * 'moved' when its batch is not `batchId`: read it again); `cancelled` whether this call cancelled it.
 */
export interface CancelReply {
  before: string
  cancelled: boolean
}

function pack(keys: QueueKeys, { id, batchId, now, statusTtlSeconds }: CancelCall) {
  const statusKey = keys.status(id)
  return {
    scriptKeys: [statusKey, keys.delayed, ...keys.streams, batchId ? keys.batch(batchId) : statusKey],
    args: [id, now, statusTtlSeconds, batchId, GROUP, batchId ? keys.progress(batchId) : ''],
  }
}

/** The reply of one `cancel` call (as `cancel` resolves it, or as a pipeline gives it). */
export function parseCancelReply(reply: unknown): CancelReply {
  const [before, cancelled] = reply as [string, number]
  return { before: String(before ?? ''), cancelled: cancelled === 1 }
}

/** `lua/cancel.lua`: stops a queued, scheduled, retrying or throttled job that no worker holds. */
export async function cancel(client: RedisClient, keys: QueueKeys, call: CancelCall): Promise<CancelReply> {
  const { scriptKeys, args } = pack(keys, call)
  return parseCancelReply(await runScript(client, 'cancel', scriptKeys, args))
}

/** `cancel` added to a pipeline: read its reply with `parseCancelReply`. */
export function addCancel(pipeline: ChainableCommander, keys: QueueKeys, call: CancelCall): void {
  const { scriptKeys, args } = pack(keys, call)
  addScript(pipeline, 'cancel', scriptKeys, args)
}
