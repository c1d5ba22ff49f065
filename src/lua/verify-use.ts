import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

/**
 * `lua/verify-use.lua`: uses the code in `key` once, if its stored hash is still `hash`. True
 * for the one call that used it; false when it was used, replaced or expired meanwhile.
 */
export async function verifyUse(client: RedisClient, key: string, { hash }: { hash: string }): Promise<boolean> {
  return (await runScript<number>(client, 'verifyUse', [key], [hash])) === 1
}
