import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

/**
 * `lua/promote.lua`: moves the candidates (read with ZRANGEBYSCORE; re-checked here) that are
 * due at `now` from the delayed set to their send streams. Resolves how many moved.
 */
export function promote(
  client: RedisClient,
  keys: QueueKeys,
  { now, ids }: { now: number; ids: readonly string[] },
): Promise<number> {
  const scriptKeys: string[] = [keys.delayed, ...keys.streams, keys.dead]
  for (const id of ids) scriptKeys.push(keys.status(id))
  return runScript<number>(client, 'promote', scriptKeys, [now, ...ids]).then(Number)
}
