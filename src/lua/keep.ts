import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import type { StreamIndex } from './entry.js'
import { runScript } from './index.js'

/**
 * `lua/keep.lua`: resets the idle time of entries `consumer` still holds, so that no other
 * worker reclaims them; an entry another consumer owns by now is left alone. Resolves how many
 * were kept.
 */
export function keep(
  client: RedisClient,
  keys: QueueKeys,
  {
    group,
    consumer,
    entries,
  }: { group: string; consumer: string; entries: Iterable<{ streamIndex: StreamIndex | number; entryId: string }> },
): Promise<number> {
  const args: (string | number)[] = [group, consumer]
  for (const { streamIndex, entryId } of entries) args.push(streamIndex, entryId)
  return runScript<number>(client, 'keep', keys.streams, args).then(Number)
}
