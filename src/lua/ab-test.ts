// The A/B test scripts (ab-hold, ab-decide, ab-trim, ab-claim): KEYS and ARGV packed in one place.
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

/**
 * `lua/ab-hold.lua`: appends recipients (JSON each) to a batch's holdout list. Resolves `held`,
 * `cancelled`, or the winner's index when the test was decided meanwhile (nothing appended).
 */
export async function abHold(
  client: RedisClient,
  keys: QueueKeys,
  batchId: string,
  entries: readonly string[],
): Promise<'held' | 'cancelled' | number> {
  const reply = await runScript<number>(client, 'abHold', [keys.batch(batchId), keys.abRest(batchId)], entries)
  return reply === -1 ? 'held' : reply === -2 ? 'cancelled' : reply
}

/** `lua/ab-decide.lua`: records a decision once; resolves the one recorded (JSON), this or an earlier one. */
export function abDecide(
  client: RedisClient,
  keys: QueueKeys,
  batchId: string,
  decisionJson: string,
  winner: number,
): Promise<string> {
  return runScript<string>(client, 'abDecide', [keys.batch(batchId)], [decisionJson, winner])
}

/** `lua/ab-trim.lua`: drops `count` enqueued recipients from the list's head, if `seen` is still the trimmed count. */
export async function abTrim(
  client: RedisClient,
  keys: QueueKeys,
  batchId: string,
  seen: number,
  count: number,
): Promise<boolean> {
  return (await runScript<number>(client, 'abTrim', [keys.batch(batchId), keys.abRest(batchId)], [seen, count])) === 1
}

/** `lua/ab-claim.lua`: the batch ids of tests due at `now`, each leased for `leaseMs`. */
export function abClaim(
  client: RedisClient,
  keys: QueueKeys,
  { now, leaseMs, count }: { now: number; leaseMs: number; count: number },
): Promise<string[]> {
  return runScript<string[]>(client, 'abClaim', [keys.abTests], [now, leaseMs, count])
}
