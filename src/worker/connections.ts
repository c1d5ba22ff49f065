import type { Redis } from 'ioredis'
import { MailstreamError } from '../errors.js'
import { GROUP, type QueueKeys } from '../keys.js'
import { defineScripts } from '../lua/index.js'
import { checkClusterPrefix } from '../options.js'
import {
  bounded,
  boundedClient,
  duplicateForBlocking,
  isCluster,
  quit,
  type RedisClient,
  type RedisInput,
  resolveRedis,
} from '../redis.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * The worker's two connections: one for commands, one for the blocking read (a blocked
 * connection can serve nothing else), and the consumer groups on the queue's streams.
 */
export function createConnections(options: {
  redis: RedisInput
  prefix: string
  keys: QueueKeys
  consumer: string
  commandTimeoutMs: number
}) {
  const { keys, consumer } = options
  const blockingName = `mailstream:${consumer}`.replace(/\s/g, '_')
  let client: RedisClient | undefined
  let owned = false
  let blocking: RedisClient | undefined
  let boundedView: RedisClient | undefined
  let blockingId: number | undefined
  let blockingRead = false
  let groupsReady = false

  function redis(): RedisClient {
    if (!client) throw new MailstreamError('E_CLOSED', 'the worker is not started')
    return client
  }

  /** Every Redis call of the worker has a bound: a frozen Redis becomes an error that is retried. */
  const timed = <T>(promise: Promise<T>, what: string, extraMs = 0): Promise<T> =>
    bounded(promise, options.commandTimeoutMs + extraMs, what)

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
    redis,
    timed,
    /** The command client with every call bounded, for code that calls Redis in many places (pacing). */
    bounded: () => boundedView ?? redis(),
    get groupsReady() {
      return groupsReady
    },
    /** Called when Redis says NOGROUP (the streams were deleted): the groups are made again. */
    groupsLost(): void {
      groupsReady = false
    },
    /** True while the connection may still answer at once (not down, not reconnecting). */
    get reachable(): boolean {
      return client !== undefined && !['reconnecting', 'close', 'end'].includes(client.status)
    },

    open(): void {
      const resolved = resolveRedis(options.redis)
      client = resolved.client
      owned = resolved.owned
      checkClusterPrefix(client, options.prefix, 'createEmailWorker')
      defineScripts(client)
      boundedView = boundedClient(client, options.commandTimeoutMs)
      blocking = duplicateForBlocking(client, blockingName)
      blocking.on('error', () => {
        // Reported through the loops' own failures as `error` events.
      })
      blocking.on('close', () => {
        blockingId = undefined
      })
      groupsReady = false
    },

    async ensureGroups(): Promise<void> {
      for (const stream of keys.streams) {
        try {
          // Group at 0: jobs enqueued before any worker ever ran are delivered too.
          await timed(redis().xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM'), 'creating consumer groups')
        } catch (error) {
          if (!String((error as Error).message).includes('BUSYGROUP')) throw error
        }
        // Registered on every stream, so that stats count this worker even where it has read nothing yet.
        await timed(redis().xgroup('CREATECONSUMER', stream, GROUP, consumer), 'creating consumer groups')
      }
      groupsReady = true
    },

    /** XREADGROUP BLOCK on the blocking connection: new entries of the three streams, highest priority first. */
    async readBlocking(count: number, blockMs: number): Promise<[string, [string, string[]][]][] | null> {
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

    /**
     * Closes both connections. QUIT (for a client the worker made) only when `gracefulMs` is left
     * and Redis answered; otherwise the connection is cut. A client given to the worker stays open.
     */
    async close(gracefulMs: number): Promise<void> {
      blocking?.disconnect()
      blocking = undefined
      const current = client
      client = undefined
      boundedView = undefined
      if (!owned || !current) return
      if (gracefulMs > 0) await quit(current, gracefulMs)
      else current.disconnect()
    },
  }
}

export type Connections = ReturnType<typeof createConnections>
