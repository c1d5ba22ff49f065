import { type ChainableCommander, Cluster, Redis, type RedisOptions } from 'ioredis'
import { z } from 'zod'
import { describeError, MailstreamError } from './errors.js'
import { withTimeout } from './timeout.js'

export type RedisClient = Redis | Cluster
/** An ioredis client (never closed by mailstream), or options / a URL for one it creates and closes. */
export type RedisInput = RedisClient | RedisOptions | string

/** Receives a Redis outage of a client mailstream created: once per outage, not once per reconnect. */
export type ErrorReport = (error: MailstreamError) => void

export interface ResolvedRedis {
  client: RedisClient
  /** True when mailstream created the client and must close it. */
  owned: boolean
}

/** Default bound, in ms, on every wait for Redis (`commandTimeoutMs`). */
export const DEFAULT_COMMAND_TIMEOUT_MS = 5000

/** `commandTimeoutMs` as every factory validates it: 10 ms to 10 min, default 5000. */
export const commandTimeoutSchema = z.number().int().min(10).max(600_000).default(DEFAULT_COMMAND_TIMEOUT_MS)

/** `onError` as every factory validates it. */
export const onErrorSchema = z
  .custom<ErrorReport>((value) => typeof value === 'function', { message: 'must be a function (error) => void' })
  .optional()

/**
 * The Redis fields every factory that talks to Redis validates alike: `commandTimeoutMs` and
 * `onError`. Spread into its `strictObject`; `redis` stays with each factory (some fall back to a queue's).
 */
export const connectionOptionsShape = {
  commandTimeoutMs: commandTimeoutSchema,
  onError: onErrorSchema,
}

export function isRedisClient(value: unknown): value is RedisClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Redis).duplicate === 'function' &&
    typeof (value as Redis).xadd === 'function'
  )
}

/**
 * A client from a URL or options fails a command after one failed reconnection (about 50 ms
 * when the port refuses) instead of queueing it for 20 (10 s); options given keep their own
 * `maxRetriesPerRequest`. It has an `error` listener from the start, so that ioredis never prints
 * "Unhandled error event": its outages are reported through `watchClient` / `onError`.
 */
export function resolveRedis(input: RedisInput | undefined, field = 'redis'): ResolvedRedis {
  if (isRedisClient(input)) return { client: input, owned: false }
  let client: Redis
  if (typeof input === 'string') {
    if (!/^rediss?:\/\//.test(input)) {
      throw new MailstreamError('E_CONFIG', `${field}: a URL must start with redis:// or rediss://`, { field })
    }
    client = new Redis(input, { lazyConnect: false, maxRetriesPerRequest: 1 })
  } else if (typeof input === 'object' && input !== null) {
    client = new Redis({ maxRetriesPerRequest: 1, ...(input as RedisOptions) })
  } else {
    throw new MailstreamError('E_CONFIG', `${field}: give an ioredis client, ioredis options or a redis:// URL`, {
      field,
    })
  }
  client.on('error', ignore)
  return { client, owned: true }
}

function ignore(): void {}

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

/**
 * Rejects with `E_TIMEOUT` (`<what>: Redis did not answer within <ms> ms`) when `promise` has not
 * settled after `ms`; otherwise settles as it does. The timer is cleared either way, and a late
 * rejection of `promise` is swallowed (never an unhandled rejection).
 */
export function bounded<T>(promise: PromiseLike<T>, ms: number, what: string): Promise<T> {
  return withTimeout(
    promise,
    ms,
    () => new MailstreamError('E_TIMEOUT', `${what}: Redis did not answer within ${ms} ms`),
  )
}

/** `error` as is when it is a MailstreamError; otherwise `E_REDIS` `<what>: <message>` with `error` as `cause`. */
export function toRedisError(error: unknown, what: string): MailstreamError {
  if (error instanceof MailstreamError) return error
  // EXECABORT says only that a queued command failed; ioredis keeps why.
  const previous = (error as { previousErrors?: unknown[] } | null)?.previousErrors?.[0]
  const reason = previous === undefined ? '' : ` (${describeError(previous)})`
  return new MailstreamError('E_REDIS', `${what}: ${describeError(error)}${reason}`, { cause: error })
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function'

type AnyFunction = (...args: unknown[]) => unknown

/** `target` seen through a Proxy whose methods are `wrap(method, name)`; methods returning `target` return the proxy. */
function proxyMethods<T extends object>(
  target: T,
  wrap: (method: AnyFunction, name: string, proxy: T) => AnyFunction,
): T {
  const wrappers = new WeakMap<AnyFunction, AnyFunction>()
  const proxy: T = new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property, object) as unknown
      if (typeof value !== 'function' || typeof property === 'symbol') return value
      let wrapper = wrappers.get(value as AnyFunction)
      if (!wrapper) {
        wrapper = wrap(value as AnyFunction, property, proxy)
        wrappers.set(value as AnyFunction, wrapper)
      }
      return wrapper
    },
  })
  return proxy
}

function boundedPipeline(pipeline: ChainableCommander, ms: number): ChainableCommander {
  return proxyMethods(pipeline, (method, name, proxy) => (...args) => {
    const result = method.apply(pipeline, args)
    if (name === 'exec') return bounded(result as Promise<unknown>, ms, 'pipeline')
    return result === pipeline ? proxy : result
  })
}

/** What a bounded client names an EVALSHA or EVAL by, from its first argument (a script's SHA1 or source). */
const scriptLabels = new Map<string, string>()

/** Names a script in a bounded client's E_TIMEOUT (`<label>: Redis did not answer ...`) instead of `evalsha`. */
export function labelScript(shaOrSource: string, label: string): void {
  scriptLabels.set(shaOrSource, label)
}

const labelOf = (name: string, args: unknown[]): string =>
  (name === 'evalsha' || name === 'eval') && typeof args[0] === 'string' ? (scriptLabels.get(args[0]) ?? name) : name

/**
 * The same client, seen through a view on which every command's reply (a pipeline's or a
 * transaction's `exec` counts as one) is `bounded` by `ms`: a frozen Redis then surfaces as
 * `E_TIMEOUT` instead of a promise that never settles. Commands still go out on the one
 * connection; a command that timed out may still run once Redis answers again. Scripts defined
 * with `defineCommand` on the client are bounded too, and an EVALSHA of a script registered with
`labelScript` is named by its label. Use the client itself for `duplicate`,
 * `quit` and event listeners; they also work through the view.
 */
export function boundedClient<C extends RedisClient>(client: C, ms: number): C {
  return proxyMethods(client, (method, name, proxy) => (...args) => {
    const result = method.apply(client, args)
    if (result === client) return proxy
    if (isThenable(result)) return bounded(result, ms, labelOf(name, args))
    if ((name === 'pipeline' || name === 'multi') && typeof result === 'object' && result !== null) {
      return boundedPipeline(result as ChainableCommander, ms)
    }
    return result
  })
}

type AsyncMethods = { [name: string]: ((...args: never[]) => unknown) | AsyncMethods }

/**
 * Wraps the methods of a public API table (and of the plain objects in it, such as
 * `deadLetters`) so that whatever they throw or reject leaves as a MailstreamError
 * (`toRedisError`, labelled with the method's dotted name), and a method's whole call is
 * `bounded` by `ms`, except the `unbounded` ones (long calls of many round trips, which rely on
 * the bound of each reply). Methods that return no promise are left as they are.
 */
export function guardMethods<T extends AsyncMethods>(
  table: T,
  ms: number,
  options: { unbounded?: readonly string[]; prefix?: string } = {},
): T {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(table)) {
    const what = options.prefix ? `${options.prefix}.${name}` : name
    if (typeof value !== 'function') {
      out[name] = guardMethods(value, ms, { ...options, prefix: what })
      continue
    }
    const method = value as AnyFunction
    const whole = options.unbounded?.includes(what) !== true
    out[name] = (...args: unknown[]) => {
      let result: unknown
      try {
        result = method(...args)
      } catch (error) {
        throw toRedisError(error, what)
      }
      if (!isThenable(result)) return result
      const settled = whole ? bounded(result, ms, what) : result
      return settled.then(undefined, (error: unknown) => {
        throw toRedisError(error, what)
      })
    }
  }
  return out as T
}

/** Closes a client within `ms`: QUIT (letting commands already sent finish), then a hard disconnect. Never rejects. */
export async function quit(client: RedisClient, ms = DEFAULT_COMMAND_TIMEOUT_MS): Promise<void> {
  try {
    await bounded(client.quit(), ms, 'quit')
  } catch {
    // Frozen, refused or already closed: drop the connection; its pending commands reject.
    client.disconnect()
  }
}

export interface OutageReporter {
  /**
   * Listens to a client's connection errors and reports them to the reporter's function as
   * `E_REDIS` (the ioredis error as `cause`). Returns the function that stops listening.
   */
  watch(client: RedisClient): () => void
}

/**
 * One report per outage across the clients it watches: the first connection error while every
 * watched client is up is reported; the rest are not until each client that failed is `ready`
 * again (or no longer watched). A report function that throws is ignored. Without `report`,
 * errors are only kept from reaching ioredis's "Unhandled error event" print.
 */
export function createOutageReporter(report: ErrorReport | undefined, what = 'Redis connection'): OutageReporter {
  const down = new Set<RedisClient>()
  return {
    watch(client) {
      const onError = (error: unknown) => {
        const first = down.size === 0
        down.add(client)
        if (!first || !report) return
        try {
          report(toRedisError(error, what))
        } catch {
          // The host's reporter failing must not break the client.
        }
      }
      const onReady = () => {
        down.delete(client)
      }
      client.on('error', onError)
      client.on('ready', onReady)
      return () => {
        client.off('error', onError)
        client.off('ready', onReady)
        down.delete(client)
      }
    },
  }
}

/** `createOutageReporter(report).watch(client)`: one client, reported once per outage. */
export function watchClient(client: RedisClient, report: ErrorReport, what?: string): () => void {
  return createOutageReporter(report, what).watch(client)
}

export interface ProducerConnectionConfig {
  /** A client (used as it is, never closed), or the options or URL to create one from. */
  redis: RedisInput
  /** Bound on every reply, and on QUIT at `close()`. */
  commandTimeoutMs: number
  /** Told of outages of a client created here, once per outage. */
  onError?: ErrorReport | undefined
}

export interface ProducerConnection {
  /** The client, seen through `boundedClient`. */
  client: RedisClient
  /** QUITs the client when it was created here (within `commandTimeoutMs`) and stops reporting it. Never rejects. */
  close(): Promise<void>
}

/**
 * The one connection of a factory that only sends commands (the rate limiter, verification
 * codes): resolved from `config.redis`, its replies bounded, its outages reported as
 * `<label>: Redis`. Calls after the first to `close()` do nothing.
 */
export function createProducerConnection(config: ProducerConnectionConfig, label: string): ProducerConnection {
  const { client: given, owned } = resolveRedis(config.redis)
  const client = boundedClient(given, config.commandTimeoutMs)
  const unwatch = owned ? createOutageReporter(config.onError, `${label}: Redis`).watch(given) : () => {}
  let closed = false
  return {
    client,
    async close() {
      if (closed) return
      closed = true
      if (owned) await quit(given, config.commandTimeoutMs)
      unwatch()
    },
  }
}
