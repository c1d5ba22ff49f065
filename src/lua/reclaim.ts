import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

/** One entry taken over from another consumer. */
export interface ReclaimedEntry {
  entryId: string
  /** '' when the entry has none. */
  jobId: string
  /** The job as JSON; '' when the entry has none. */
  payload: string
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
  /** Times the entry was delivered, this claim included. */
  deliveries: number
}

export interface ReclaimCall {
  /** One send stream. */
  stream: string
  group: string
  /** The new owner; its own pending entries are never claimed. */
  consumer: string
  /** Only entries idle at least this long. */
  minIdleMs: number
  /** '-' to start, else the `cursor` of the previous call. */
  cursor: string
  /** Entries to claim at most. */
  count: number
}

/**
 * `lua/reclaim.lua`: claims entries other consumers left pending for `minIdleMs`. `cursor` is
 * where the next call goes on ('-' when the pending list was looked at to its end).
 */
export async function reclaim(
  client: RedisClient,
  { stream, group, consumer, minIdleMs, cursor, count }: ReclaimCall,
): Promise<{ cursor: string; entries: ReclaimedEntry[] }> {
  const flat = await runScript<(string | number)[]>(
    client,
    'reclaim',
    [stream],
    [group, consumer, minIdleMs, cursor, count],
  )
  const entries: ReclaimedEntry[] = []
  for (let i = 1; i + 4 < flat.length; i += 5) {
    entries.push({
      entryId: String(flat[i]),
      jobId: String(flat[i + 1]),
      payload: String(flat[i + 2]),
      rcpt: String(flat[i + 3]),
      deliveries: Number(flat[i + 4]),
    })
  }
  return { cursor: String(flat[0]), entries }
}
