import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export type VerifyAttemptReply =
  /** The attempt is counted (`attempts` with it): compare the code with `hash`. */
  | { state: 'ok'; hash: string; attempts: number }
  /** `locked`: max attempts reached (`attempts` says how many). */
  | { state: 'locked'; hash: ''; attempts: number }
  /** None issued (or expired and gone), expired, or used already. */
  | { state: 'missing' | 'expired' | 'used'; hash: ''; attempts: 0 }

/** `lua/verify-attempt.lua`: counts one attempt at the code in `key` before it is compared. */
export async function verifyAttempt(
  client: RedisClient,
  key: string,
  { maxAttempts }: { maxAttempts: number },
): Promise<VerifyAttemptReply> {
  const [state, hash, attempts] = await runScript<[string, string, number]>(
    client,
    'verifyAttempt',
    [key],
    [maxAttempts],
  )
  return { state, hash, attempts: Number(attempts) } as VerifyAttemptReply
}
