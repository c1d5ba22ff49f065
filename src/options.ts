import { z } from 'zod'
import { issuesError, MailstreamError } from './errors.js'
import { showValue } from './job.js'
// Types only: transports use parseOptions, and must not load ioredis through redis.ts.
import type { RedisClient, RedisInput } from './redis.js'

/** Validates factory options once, at the boundary; throws `E_CONFIG` naming the field. */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, factory: string): z.output<S> {
  const result = schema.safeParse(input ?? {})
  if (result.success) return result.data
  throw issuesError('E_CONFIG', result.error, 'options', `${factory}: `)
}

export const redisInputSchema = z.custom<RedisInput>(
  // An ioredis client is an object too: resolveRedis tells clients from options.
  (value) =>
    (typeof value === 'string' && /^rediss?:\/\//.test(value)) ||
    (typeof value === 'object' && value !== null && !Array.isArray(value)),
  { message: 'give an ioredis client, ioredis options or a redis:// URL' },
)

/** A key prefix as every factory validates it, with that factory's default. */
export function keyPrefixSchema(defaultPrefix: string) {
  return z
    .string()
    .regex(/^[^\s]{1,100}$/, 'must be 1-100 characters without spaces')
    .default(defaultPrefix)
}

/** The `prefix` of a queue and its worker. Default `email`. */
export const prefixSchema = keyPrefixSchema('email')

/**
 * The hash tag Redis Cluster hashes a key by, when the key starts with `prefix`: the text between
 * the first `{` and the first `}` after it, if that text is not empty. Null when the prefix has
 * none, in which case Redis hashes each whole key and the keys of one queue scatter over slots.
 */
export function clusterHashTag(prefix: string): string | null {
  const open = prefix.indexOf('{')
  if (open < 0) return null
  const close = prefix.indexOf('}', open + 1)
  // An unclosed `{` is no tag either: the first `}` would come from the rest of a key.
  return close > open + 1 ? prefix.slice(open + 1, close) : null
}

/** On Redis Cluster every key of a queue must hash to one slot, so the prefix needs a {hash tag}. */
export function checkClusterPrefix(client: RedisClient, prefix: string, factory: string): void {
  if ((client as { isCluster?: boolean }).isCluster && clusterHashTag(prefix) === null) {
    throw new MailstreamError(
      'E_CONFIG',
      `${factory}: prefix: on Redis Cluster the first '{' of the prefix must open a non-empty hash tag such as '{email}', so that one queue lives in one slot (got ${showValue(prefix)})`,
      { field: 'prefix' },
    )
  }
}
