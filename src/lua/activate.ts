import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import type { StreamIndex } from './entry.js'
import { splitList } from './entry.js'
import { runScript } from './index.js'

/** An entry to check before it is sent: delivered again, or read by a blocking read. */
export interface ActivateEntry {
  streamIndex: StreamIndex | number
  entryId: string
  /** '' when the entry has none. */
  jobId: string
  /** Times delivered, this delivery included. */
  deliveries: number
  /** The job as JSON ('' when the entry has none); only whether it is there is sent. */
  payload: string
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
}

/**
 * What `activate` decided for one entry:
 * `send` (leaving out `suppressed`), `over` (delivered more than max deliveries: the caller
 * dead-letters it), `skip` (its job is final, cancelled or moved on: acknowledged and deleted),
 * `poison` (no job behind it: moved to the dead stream).
 */
export interface ActivateVerdict {
  verdict: 'send' | 'over' | 'skip' | 'poison'
  /** Attempts the job has used (0 for skip and poison). */
  attempts: number
  suppressed: string[]
  /** Throttles in a row the job has had (0 for skip and poison). */
  throttles: number
}

/** `lua/activate.lua`: one verdict per entry, in order. */
export async function activate(
  client: RedisClient,
  keys: QueueKeys,
  {
    group,
    now,
    maxDeliveries,
    entries,
  }: { group: string; now: number; maxDeliveries: number; entries: readonly ActivateEntry[] },
): Promise<ActivateVerdict[]> {
  const scriptKeys: string[] = [...keys.streams, keys.dead, keys.suppressed]
  const args: (string | number)[] = [group, now, maxDeliveries]
  for (const entry of entries) {
    scriptKeys.push(keys.status(entry.jobId))
    args.push(
      entry.streamIndex,
      entry.entryId,
      entry.jobId,
      entry.deliveries,
      entry.payload === '' ? '0' : '1',
      entry.rcpt,
    )
  }
  const replies = await runScript<[string, number, string, number][]>(client, 'activate', scriptKeys, args)
  return replies.map(([verdict, attempts, suppressed, throttles]) => ({
    verdict: verdict as ActivateVerdict['verdict'],
    attempts: Number(attempts),
    suppressed: splitList(suppressed),
    throttles: Number(throttles) || 0,
  }))
}
