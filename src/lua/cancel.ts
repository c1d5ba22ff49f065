import type { ChainableCommander } from 'ioredis'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { addScript, runScript } from './index.js'

export interface CancelCall {
  id: string
  /** The batch id the caller read from the job's status hash; '' for none. */
  batchId: string
  /** Epoch ms. */
  now: number
  /** TTL of the final status. */
  statusTtlSeconds: number
  /** The send streams' consumer group (keys.ts GROUP). */
  group: string
}

export interface CancelReply {
  /**
   * The status before the call: '' for an unknown job, `active` for a queued job already
   * delivered to a worker, `moved` when the job's batch is not `batchId` any more (read again).
   */
  before: string
  cancelled: boolean
}

function pack(keys: QueueKeys, { id, batchId, now, statusTtlSeconds, group }: CancelCall) {
  const statusKey = keys.status(id)
  return {
    scriptKeys: [statusKey, keys.delayed, ...keys.streams, batchId ? keys.batch(batchId) : statusKey],
    args: [id, now, statusTtlSeconds, batchId, group, batchId ? keys.progress(batchId) : ''],
  }
}

export function cancelReply(reply: unknown): CancelReply {
  const [before, cancelled] = reply as [string, number]
  return { before: String(before), cancelled: cancelled === 1 }
}

/** `lua/cancel.lua`: cancels one job that has not started sending. */
export async function cancel(client: RedisClient, keys: QueueKeys, call: CancelCall): Promise<CancelReply> {
  const { scriptKeys, args } = pack(keys, call)
  return cancelReply(await runScript<unknown>(client, 'cancel', scriptKeys, args))
}

/** Adds one `cancel` call to a pipeline; read its reply from `exec` with `cancelReply`. */
export function addCancel(pipeline: ChainableCommander, keys: QueueKeys, call: CancelCall): void {
  const { scriptKeys, args } = pack(keys, call)
  addScript(pipeline, 'cancel', scriptKeys, args)
}
