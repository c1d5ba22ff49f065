// The Redis connection and queue a queue command runs on. Loaded only when such a command runs:
// ioredis and the queue are most of the time `mailstream --help` used to spend.
import { Redis } from 'ioredis'
import { createEmailQueue } from '../queue/index.js'
import { queueInternals } from '../queue/internals.js'
import type { Context, Runner } from './context.js'

/** A runner that connects (one attempt, 3 s), runs `command` on the queue and disconnects. */
export function withQueue(command: (context: Context) => Promise<void>): Runner {
  return async (invocation) => {
    const redis = new Redis(invocation.redisUrl, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      connectTimeout: 3000,
      retryStrategy: () => null,
    })
    let connectionError: Error | undefined
    redis.on('error', (error: Error) => {
      connectionError = error
    })
    try {
      try {
        await redis.connect()
      } catch (error) {
        throw new Error(
          `cannot reach Redis at ${invocation.redisUrl}: ${(connectionError ?? (error as Error)).message}`,
        )
      }
      const queue = createEmailQueue({ redis, prefix: invocation.prefix })
      const json = invocation.values.json === true
      await command({ ...invocation, queue, redis, keys: queueInternals(queue).keys, json })
    } finally {
      redis.disconnect()
    }
  }
}
