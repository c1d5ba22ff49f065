import type { Redis } from 'ioredis'
import type { Issue, Subscriber, SubscriberStore } from '../shared/store.js'

// Each status change touches the subscriber's hash and the set of active addresses together, in
// one Lua script. KEYS[1] is the subscriber's hash, KEYS[2] the sorted set of active addresses.

/** ARGV: email, name ('' keeps the old one), locale (likewise), now. Replies the hash. */
const REQUEST = `
if redis.call('HGET', KEYS[1], 'status') ~= 'active' then
  redis.call('HSET', KEYS[1], 'email', ARGV[1], 'status', 'pending')
  redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[4])
  if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'name', ARGV[2]) end
  if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'locale', ARGV[3]) end
  redis.call('HDEL', KEYS[1], 'unsubscribedAt')
end
return redis.call('HGETALL', KEYS[1])`

/** ARGV: email, now. Replies 1 when pending became active. */
const ACTIVATE = `
if redis.call('HGET', KEYS[1], 'status') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'active', 'confirmedAt', ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1`

/** ARGV: email, now. Replies 1 when the status changed. */
const UNSUBSCRIBE = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'unsubscribed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'unsubscribed', 'unsubscribedAt', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`

/**
 * KEYS[1]: the issue's hash, KEYS[2]: the issues by publish time. ARGV: id, title, body,
 * publishedAt. Keeps the first; replies the hash.
 */
const SAVE_ISSUE = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'id', ARGV[1], 'title', ARGV[2], 'body', ARGV[3], 'publishedAt', ARGV[4])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return redis.call('HGETALL', KEYS[1])`

const pairs = (flat: string[]): Record<string, string> => {
  const hash: Record<string, string> = {}
  for (let i = 0; i < flat.length; i += 2) hash[flat[i] as string] = flat[i + 1] as string
  return hash
}

function toSubscriber(hash: Record<string, string>): Subscriber | null {
  if (!hash.email || !hash.status) return null
  const subscriber: Subscriber = {
    email: hash.email,
    status: hash.status as Subscriber['status'],
    createdAt: Number(hash.createdAt),
  }
  if (hash.name) subscriber.name = hash.name
  if (hash.locale) subscriber.locale = hash.locale
  if (hash.confirmedAt) subscriber.confirmedAt = Number(hash.confirmedAt)
  if (hash.unsubscribedAt) subscriber.unsubscribedAt = Number(hash.unsubscribedAt)
  return subscriber
}

const toIssue = (hash: Record<string, string>): Issue | null =>
  hash.id
    ? { id: hash.id, title: hash.title ?? '', body: hash.body ?? '', publishedAt: Number(hash.publishedAt) }
    : null

/**
 * Subscribers and issues in Redis, next to the queue: a hash per subscriber
 * (`<prefix>:app:subscriber:<email>`) and a sorted set of the active addresses
 * (`<prefix>:app:active`, all scores 0, so that it is read in address order, page by page); a hash
 * per issue and `<prefix>:app:issues`, the issue ids by publish time.
 */
export function createRedisStore(redis: Redis, prefix: string): SubscriberStore {
  const subscriberKey = (email: string) => `${prefix}:app:subscriber:${email}`
  const activeKey = `${prefix}:app:active`
  const issueKey = (id: string) => `${prefix}:app:issue:${id}`
  const issuesKey = `${prefix}:app:issues`

  return {
    async get(email) {
      return toSubscriber(await redis.hgetall(subscriberKey(email)))
    },

    async requestSubscription({ email, name, locale }) {
      const reply = (await redis.eval(
        REQUEST,
        1,
        subscriberKey(email),
        email,
        name ?? '',
        locale ?? '',
        Date.now(),
      )) as string[]
      return toSubscriber(pairs(reply)) as Subscriber
    },

    async activate(email) {
      return (await redis.eval(ACTIVATE, 2, subscriberKey(email), activeKey, email, Date.now())) === 1
    },

    async unsubscribe(email) {
      return (await redis.eval(UNSUBSCRIBE, 2, subscriberKey(email), activeKey, email, Date.now())) === 1
    },

    async *activeSubscribers(pageSize = 500) {
      // By address: each page starts after the last address of the one before (ZRANGE BYLEX).
      let after = '-'
      for (;;) {
        const emails = await redis.zrangebylex(activeKey, after, '+', 'LIMIT', 0, pageSize)
        const pipeline = redis.pipeline()
        for (const email of emails) pipeline.hgetall(subscriberKey(email))
        const hashes = (await pipeline.exec()) ?? []
        for (const [error, hash] of hashes) {
          if (error) throw error
          const subscriber = toSubscriber(hash as Record<string, string>)
          // Unsubscribed between the two reads: leave them out.
          if (subscriber?.status === 'active') yield subscriber
        }
        if (emails.length < pageSize) return
        after = `(${emails.at(-1)}`
      }
    },

    async saveIssue(issue) {
      const reply = (await redis.eval(
        SAVE_ISSUE,
        2,
        issueKey(issue.id),
        issuesKey,
        issue.id,
        issue.title,
        issue.body,
        issue.publishedAt,
      )) as string[]
      return toIssue(pairs(reply)) as Issue
    },

    async getIssue(id) {
      return toIssue(await redis.hgetall(issueKey(id)))
    },

    async recentIssues(limit) {
      const ids = await redis.zrevrange(issuesKey, 0, limit - 1)
      const issues = await Promise.all(ids.map(async (id) => toIssue(await redis.hgetall(issueKey(id)))))
      return issues.filter((issue): issue is Issue => issue !== null)
    },

    async ping() {
      await redis.ping()
    },
  }
}
