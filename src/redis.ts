import { Cluster, Redis, type RedisOptions } from 'ioredis'
import { MailstreamError } from './errors.js'

export type RedisClient = Redis | Cluster
/** An ioredis client (never closed by mailstream), or options / a URL for one it creates and closes. */
export type RedisInput = RedisClient | RedisOptions | string

export interface ResolvedRedis {
  client: RedisClient
  /** True when mailstream created the client and must close it. */
  owned: boolean
}

export function isRedisClient(value: unknown): value is RedisClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Redis).duplicate === 'function' &&
    typeof (value as Redis).xadd === 'function'
  )
}

export function resolveRedis(input: RedisInput | undefined, field = 'redis'): ResolvedRedis {
  if (isRedisClient(input)) return { client: input, owned: false }
  if (typeof input === 'string') {
    if (!/^rediss?:\/\//.test(input)) {
      throw new MailstreamError('E_CONFIG', `${field}: a URL must start with redis:// or rediss://`, { field })
    }
    return { client: new Redis(input, { lazyConnect: false }), owned: true }
  }
  if (typeof input === 'object' && input !== null) return { client: new Redis(input as RedisOptions), owned: true }
  throw new MailstreamError('E_CONFIG', `${field}: give an ioredis client, ioredis options or a redis:// URL`, {
    field,
  })
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster || (client as { isCluster?: boolean }).isCluster === true
}

/**
 * A second connection for blocking reads: a blocked connection cannot serve anything else. It
 * carries a connection name so that it can be found (CLIENT LIST) and unblocked on Cluster.
 */
export function duplicateForBlocking(client: RedisClient, connectionName: string): RedisClient {
  if (isCluster(client)) {
    return client.duplicate(undefined, { redisOptions: { ...client.options.redisOptions, connectionName } })
  }
  // Fail a command after one reconnect attempt instead of queueing it: the worker retries it
  // itself with backoff and reports the outage as an `error` event.
  return client.duplicate({ maxRetriesPerRequest: 1, enableOfflineQueue: true, connectionName })
}

export async function quit(client: RedisClient): Promise<void> {
  try {
    await client.quit()
  } catch {
    client.disconnect()
  }
}
