import { MailstreamError } from '../errors.js'
import { GROUP, type QueueKeys } from '../keys.js'
import { defineScripts } from '../lua/index.js'
import { leave } from '../lua/leave.js'
import { checkClusterPrefix } from '../options.js'
import { bounded, boundedClient, quit, type RedisClient, type RedisInput, resolveRedis } from '../redis.js'
import { createBlockingRead } from './blocking.js'

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
  let client: RedisClient | undefined
  let owned = false
  let boundedView: RedisClient | undefined
  let groupsReady = false

  function redis(): RedisClient {
    if (!client) throw new MailstreamError('E_CLOSED', 'the worker is not started')
    return client
  }

  /** Every Redis call of the worker has a bound: a frozen Redis becomes an error that is retried. */
  const timed = <T>(promise: Promise<T>, what: string, extraMs = 0): Promise<T> =>
    bounded(promise, options.commandTimeoutMs + extraMs, what)
  const blocking = createBlockingRead({ keys, consumer, timed })

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
      blocking.open(client)
      groupsReady = false
    },

    /** XREADGROUP BLOCK on the blocking connection: new entries of the three streams, highest priority first. */
    readBlocking: blocking.read,
    /** Ends the blocking read early, so that stop() and pause() take effect at once. */
    interrupt: blocking.interrupt,

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

    /**
     * PING on the command connection within `ms`, for health checks; never rejects. A connection
     * that is down or reconnecting is reported at once, without waiting.
     */
    async ping(ms: number): Promise<{ ok: boolean; latencyMs?: number; error?: string }> {
      if (!client) return { ok: false, error: 'the worker is not started' }
      if (!this.reachable) return { ok: false, error: `the connection is ${client.status}` }
      const started = performance.now()
      try {
        await bounded(client.ping(), ms, 'PING')
        return { ok: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 }
      } catch (error) {
        return { ok: false, error: (error as Error).message }
      }
    },

    /**
     * Removes this worker's consumer from the group on every stream, when it holds nothing there
     * (entries it holds stay pending under its name, for another worker to reclaim). For a clean
     * stop only, once the loops have ended. The blocking connection is cut first; should a read
     * still waiting in Redis take an entry after all, it makes the consumer again with the entry
     * pending, and the entry is reclaimed as any other. Resolves whether the consumer was removed;
     * rejects with `E_TIMEOUT` after `ms`.
     */
    async leave(ms: number): Promise<boolean> {
      blocking.close()
      return bounded(leave(redis(), keys, { group: GROUP, consumer }), ms, 'removing the consumer')
    },

    /**
     * Closes both connections. QUIT (for a client the worker made) only when `gracefulMs` is left
     * and Redis answered; otherwise the connection is cut. A client given to the worker stays open.
     */
    async close(gracefulMs: number): Promise<void> {
      blocking.close()
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
