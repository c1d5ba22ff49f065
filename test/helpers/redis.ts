import { randomBytes } from 'node:crypto'
import { Cluster, Redis } from 'ioredis'
import { afterAll, inject } from 'vitest'
import { type RedisServer, startRedisServer } from './redis-server.js'

export const redisUrl = (): string => inject('redisUrl')

/** True when this run of the suite is against Redis Cluster (the `cluster` project). */
export const onCluster = (): boolean => inject('redisClusterNodes') !== ''

const clients: (Redis | Cluster)[] = []
afterAll(async () => {
  await Promise.all(clients.splice(0).map((client) => client.quit().catch(() => client.disconnect())))
})

/**
 * A client on the run's Redis, closed after the file's tests: a Cluster client when the suite
 * runs against Redis Cluster. Typed as Redis because both expose the same commands.
 */
export function connect(url = redisUrl()): Redis {
  const nodes = inject('redisClusterNodes')
  const client =
    nodes && url === redisUrl()
      ? new Cluster(JSON.parse(nodes), { redisOptions: { maxRetriesPerRequest: 3 } })
      : new Redis(url, { maxRetriesPerRequest: 3 })
  client.on('error', () => {})
  clients.push(client)
  return client as Redis
}

/** A prefix no other test uses, so that tests can share one Redis; a hash tag on Cluster. */
export function uniquePrefix(name = 't'): string {
  const prefix = `${name}-${randomBytes(4).toString('hex')}`
  return onCluster() ? `{${prefix}}` : prefix
}

/** Every key under a prefix, sorted (on Cluster, from every master). */
export async function keysOf(client: Redis, prefix: string): Promise<string[]> {
  const nodes = (client as unknown) instanceof Cluster ? (client as unknown as Cluster).nodes('master') : [client]
  const found: string[] = []
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', `${prefix.replace(/[{}[\]*?]/g, '\\$&')}:*`, 'COUNT', 1000)
      found.push(...batch)
      cursor = next
    } while (cursor !== '0')
  }
  return found.sort()
}

export async function waitUntil(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/**
 * A redis-server of the calling describe block's own, with appendonly persistence so that it can
 * be stopped or killed and started again on the same port, gone after the block; and a client on
 * it that gives up a command after two reconnections instead of queueing it forever.
 */
export function persistentRedis(): () => Promise<{ server: RedisServer; client: Redis }> {
  const started = startRedisServer({ persistence: true })
  const clients: Redis[] = []
  afterAll(async () => {
    for (const client of clients.splice(0)) client.disconnect()
    const server = await started
    await server.stop()
    server.cleanup()
  })
  return async () => {
    const server = await started
    const client = new Redis(server.url, { maxRetriesPerRequest: 2 })
    client.on('error', () => {})
    clients.push(client)
    return { server, client }
  }
}
