import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, inject } from 'vitest'

export const redisUrl = (): string => inject('redisUrl')

const clients: Redis[] = []
afterAll(async () => {
  await Promise.all(clients.splice(0).map((client) => client.quit().catch(() => client.disconnect())))
})

/** A client on the run's Redis, closed after the file's tests. */
export function connect(url = redisUrl()): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 3 })
  client.on('error', () => {})
  clients.push(client)
  return client
}

/** A prefix no other test uses, so that tests can share one Redis. */
export function uniquePrefix(name = 't'): string {
  return `${name}-${randomBytes(4).toString('hex')}`
}

/** Every key under a prefix, sorted. */
export async function keysOf(client: Redis, prefix: string): Promise<string[]> {
  const found: string[] = []
  let cursor = '0'
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    found.push(...batch)
    cursor = next
  } while (cursor !== '0')
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
