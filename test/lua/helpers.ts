import type { Redis } from 'ioredis'
import { GROUP, type QueueKeys, queueKeys } from '../../src/keys.js'
import { type ScriptName, scriptSource } from '../../src/lua/index.js'
import { connect, uniquePrefix } from '../helpers/redis.js'

/** A stream entry as XRANGE gives it, with its fields as an object. */
export interface Entry {
  id: string
  fields: Record<string, string>
}

/** One row of the extended XPENDING form. */
export interface Pending {
  id: string
  consumer: string
  idleMs: number
  deliveries: number
}

/** What a test of one script needs: a client, the script as registered, and readers of the state it leaves. */
export interface ScriptTestbed {
  redis: Redis
  /** EVAL of the registered source (lib functions spliced in) with raw KEYS and ARGV. */
  run<T = unknown>(name: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<T>
  /** The keys of a queue under a prefix no other test uses, with the consumer group on every send stream. */
  queue(): Promise<QueueKeys>
  /** Redis's clock (TIME), epoch ms: the scripts that read TIME measure against it. */
  serverNow(): Promise<number>
  entries(stream: string): Promise<Entry[]>
  pending(stream: string): Promise<Pending[]>
  /** Adds an entry and reads it as `consumer`, so that it is pending as a fetched entry is. */
  deliver(stream: string, fields: Record<string, string>, consumer?: string): Promise<string>
  /** Messages published on a channel from now on, parsed as JSON. */
  listen(channel: string): Promise<{ messages: Record<string, unknown>[]; close(): Promise<void> }>
}

const toObject = (flat: readonly string[]): Record<string, string> => {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string
  return out
}

/** Call at the top of a test file: the client is closed after the file's tests. */
export function createScriptTestbed(): ScriptTestbed {
  const redis = connect()
  const testbed: ScriptTestbed = {
    redis,
    run: <T>(name: ScriptName, keys: readonly string[], args: readonly (string | number)[]) =>
      redis.eval(scriptSource(name), keys.length, ...keys, ...args) as Promise<T>,
    async queue() {
      const keys = queueKeys(uniquePrefix('lua'))
      for (const stream of keys.streams) await redis.xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM')
      return keys
    },
    async serverNow() {
      const [seconds, micros] = await redis.time()
      return Number(seconds) * 1000 + Number(micros) / 1000
    },
    async entries(stream) {
      const rows = await redis.xrange(stream, '-', '+')
      return rows.map(([id, fields]) => ({ id, fields: toObject(fields) }))
    },
    async pending(stream) {
      const rows = (await redis.xpending(stream, GROUP, '-', '+', 100)) as [string, string, number, number][]
      return rows.map(([id, consumer, idleMs, deliveries]) => ({ id, consumer, idleMs, deliveries }))
    },
    async deliver(stream, fields, consumer = 'c1') {
      const id = (await redis.xadd(stream, '*', ...Object.entries(fields).flat())) as string
      // Reads everything new on the stream: deliver entries one at a time, in order.
      await redis.xreadgroup('GROUP', GROUP, consumer, 'COUNT', 1000, 'STREAMS', stream, '>')
      return id
    },
    async listen(channel) {
      const subscriber = connect()
      const messages: Record<string, unknown>[] = []
      subscriber.on('message', (_channel: string, message: string) => messages.push(JSON.parse(message)))
      await subscriber.subscribe(channel)
      return { messages, close: async () => void (await subscriber.unsubscribe(channel)) }
    },
  }
  return testbed
}

/** Published messages arrive on another connection: a PING round trip there lets them land first. */
export async function settle(redis: Redis): Promise<void> {
  await redis.ping()
  await new Promise((resolve) => setTimeout(resolve, 20))
}

export { GROUP }
