import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import type { StreamIndex } from './entry.js'
import { splitList } from './entry.js'
import { runScript } from './index.js'

/** One new entry read by `fetch`. */
export interface FetchedEntry {
  streamIndex: StreamIndex
  entryId: string
  /** '' when the entry has none (a poison entry: `activate` dead-letters it). */
  jobId: string
  /** The job as JSON; '' when the entry has none. */
  payload: string
  /** Attempts used before (0 for a new job; set on entries that `promote` put back). */
  attempts: number
  /** Recipients, lower-case and ','-joined. */
  rcpt: string
  /** Its recipients that are on the suppression list. */
  suppressed: string[]
  /** Throttles in a row so far (set on entries that `promote` put back). */
  throttles: number
}

/**
 * `lua/fetch.lua`: at most `count` new entries for `consumer`, high priority first, their
 * recipients checked against the suppression list.
 */
export async function fetch(
  client: RedisClient,
  keys: QueueKeys,
  { group, consumer, count }: { group: string; consumer: string; count: number },
): Promise<FetchedEntry[]> {
  const flat = await runScript<(string | number)[]>(
    client,
    'fetch',
    [...keys.streams, keys.suppressed],
    [group, consumer, count],
  )
  const out: FetchedEntry[] = []
  for (let i = 0; i + 7 < flat.length; i += 8) {
    out.push({
      streamIndex: Number(flat[i]) as StreamIndex,
      entryId: String(flat[i + 1]),
      jobId: String(flat[i + 2]),
      payload: String(flat[i + 3]),
      attempts: Number(flat[i + 4]),
      rcpt: String(flat[i + 5]),
      suppressed: splitList(flat[i + 6]),
      throttles: Number(flat[i + 7]) || 0,
    })
  }
  return out
}
