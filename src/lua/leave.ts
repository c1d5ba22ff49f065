import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import source from './leave.lua'

/**
 * `lua/leave.lua`: removes `consumer` from `group` on every send stream when it holds no entry
 * on any of them. Resolves true when it was removed, false when it holds entries (it stays, so
 * that they can be reclaimed). Sent with EVAL: it runs once per worker stop.
 */
export async function leave(
  client: RedisClient,
  keys: QueueKeys,
  { group, consumer }: { group: string; consumer: string },
): Promise<boolean> {
  const reply = await client.eval(source, keys.streams.length, ...keys.streams, group, consumer)
  return Number(reply) === 1
}
