import type { Redis } from 'ioredis'
import { GROUP, type QueueKeys, workerConnectionName } from '../keys.js'
import { duplicateForBlocking, isCluster, type RedisClient } from '../redis.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export interface BlockingReadOptions {
  keys: QueueKeys
  consumer: string
  /** Bounds a Redis call (the command timeout, plus `extraMs`). */
  timed<T>(promise: Promise<T>, what: string, extraMs?: number): Promise<T>
}

/**
 * The blocking read of new entries on a connection of its own (a blocked connection can serve
 * nothing else), and how to end it early.
 */
export function createBlockingRead(options: BlockingReadOptions) {
  const { keys, consumer, timed } = options
  const blockingName = workerConnectionName(consumer)
  /** The command client the blocking connection was made from: on Cluster it finds the blocked node. */
  let client: RedisClient | undefined
  let blocking: RedisClient | undefined
  let blockingId: number | undefined
  let blockingRead = false

  /** The node and client id of the blocking connection, for CLIENT UNBLOCK. */
  async function blockingClient(): Promise<{ node: Redis; id: number } | undefined> {
    if (!client) return undefined
    if (!isCluster(client)) return blockingId === undefined ? undefined : { node: client, id: blockingId }
    // On Cluster the blocking client has a named connection to several nodes; the read blocks on
    // the one that owns the queue's slot.
    for (const node of client.nodes('master')) {
      const list = String(await timed(node.client('LIST'), 'finding the blocking connection'))
      const line = list
        .split('\n')
        .find((entry) => entry.includes(` name=${blockingName} `) && / flags=\S*b/.test(entry))
      const id = line && /(?:^|\s)id=(\d+)/.exec(line)?.[1]
      if (id) return { node, id: Number(id) }
    }
    return undefined
  }

  return {
    /** Makes the blocking connection from the command client. */
    open(commandClient: RedisClient): void {
      client = commandClient
      blocking = duplicateForBlocking(commandClient, blockingName)
      blocking.on('error', () => {
        // Reported through the loops' own failures as `error` events.
      })
      blocking.on('close', () => {
        blockingId = undefined
      })
    },

    /** XREADGROUP BLOCK: new entries of the three streams, highest priority first. */
    async read(count: number, blockMs: number): Promise<[string, [string, string[]][]][] | null> {
      const connection = blocking as RedisClient
      if (blockingId === undefined && !isCluster(connection)) {
        blockingId = Number(await timed(connection.client('ID'), 'waiting for jobs'))
      }
      blockingRead = true
      const read = connection.xreadgroup(
        'GROUP',
        GROUP,
        consumer,
        'COUNT',
        count,
        'BLOCK',
        blockMs,
        'STREAMS',
        ...keys.streams,
        '>',
        '>',
        '>',
      )
      try {
        return (await timed(read, 'waiting for jobs', blockMs)) as [string, [string, string[]][]][] | null
      } finally {
        blockingRead = false
      }
    },

    /** Ends the blocking read early, so that stop() and pause() take effect at once. */
    async interrupt(): Promise<void> {
      // CLIENT UNBLOCK can reach Redis just before the read it targets: repeat while one is under way.
      for (let tries = 0; blockingRead && tries < 200; tries++) {
        try {
          const target = await blockingClient()
          if (target) await timed(target.node.client('UNBLOCK', target.id), 'ending the blocking read')
        } catch {
          return // the read ends by itself within blockMs
        }
        if (blockingRead) await sleep(10)
      }
    },

    /** Cuts the blocking connection. */
    close(): void {
      blocking?.disconnect()
      blocking = undefined
      client = undefined
    },
  }
}
