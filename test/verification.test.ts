import { type Redis, ReplyError } from 'ioredis'
import { describe, expect, test } from 'vitest'
import {
  createEmailQueue,
  createVerificationCodes,
  type EmailQueue,
  MailstreamError,
  RateLimitError,
  type VerificationCodesOptions,
} from '../src/index.js'
import { harness } from './helpers/queue.js'
import { connect, keysOf, uniquePrefix } from './helpers/redis.js'

const redis = connect()
const SECRET = 'test-secret-of-at-least-16-bytes'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Codes on a fresh key prefix; `build` captures each code so that tests need no worker. */
function codes(options: Partial<VerificationCodesOptions> = {}, queue?: EmailQueue) {
  const keyPrefix = uniquePrefix('verification')
  const issued: string[] = []
  const helper = createVerificationCodes({
    redis,
    queue: queue ?? createEmailQueue({ redis, prefix: uniquePrefix('vq') }),
    secret: SECRET,
    keyPrefix,
    build: ({ code }) => {
      issued.push(code)
      return { subject: 'Your code', text: `Your code is ${code}` }
    },
    ...options,
  })
  return { helper, issued, keyPrefix, last: () => issued.at(-1) as string }
}

/** Every string stored under a prefix: keys and the values of strings, hashes, zsets and streams. */
async function everything(client: Redis, prefix: string): Promise<string> {
  const out: string[] = []
  for (const key of await keysOf(client, prefix)) {
    out.push(key)
    const type = await client.type(key)
    if (type === 'string') out.push((await client.get(key)) ?? '')
    if (type === 'hash') out.push(JSON.stringify(await client.hgetall(key)))
    if (type === 'zset') out.push(JSON.stringify(await client.zrange(key, 0, -1, 'WITHSCORES')))
    if (type === 'stream') out.push(JSON.stringify(await client.xrange(key, '-', '+')))
  }
  return out.join('\n')
}

describe('createVerificationCodes', () => {
  test('issue enqueues a high-priority verification-code job; the code arrives by email and works once', async () => {
    const { queue, transport, worker, prefix, settled } = harness(redis)
    const keyPrefix = uniquePrefix('verification')
    const helper = createVerificationCodes({ queue, secret: SECRET, keyPrefix, length: 8 })
    const rendered: { name: string; data: Record<string, unknown> }[] = []
    await worker({
      templates: {
        render(name, data) {
          rendered.push({ name, data })
          return { subject: `Code ${data.code}`, text: `Your code is ${data.code}, valid ${data.expiresInMinutes} min` }
        },
      },
    }).start()

    const before = Date.now()
    const result = await helper.issue('Reader@Example.com', { locale: 'ko' })
    expect(Object.keys(result).sort()).toEqual(['expiresAt', 'id'])
    expect(result.expiresAt).toBeGreaterThanOrEqual(before + 600_000)
    expect(result.expiresAt).toBeLessThanOrEqual(Date.now() + 600_000)
    const state = await queue.getStatus(result.id)
    expect(state).toMatchObject({ type: 'verification-code', priority: 'high' })

    const { message } = await transport.waitFor({ jobId: result.id })
    expect(message.to).toEqual([{ address: 'reader@example.com' }])
    expect(rendered[0]).toMatchObject({ name: 'verification-code', data: { expiresInMinutes: 10 } })
    const code = String(rendered[0]?.data.code)
    expect(code).toMatch(/^\d{8}$/)
    expect(message.text).toContain(code)

    // Once the email is sent, Redis holds the code nowhere: not in the code record, not in the queue.
    expect((await settled(result.id)).status).toBe('sent')
    const stored = (await everything(redis, keyPrefix)) + (await everything(redis, prefix))
    expect(stored).toContain(`${keyPrefix}:code:reader@example.com`)
    expect(stored).not.toContain(code)

    expect(await helper.verify('READER@example.com', code)).toEqual({ ok: true })
    expect(await helper.verify('reader@example.com', code)).toEqual({ ok: false, reason: 'invalid' })
  })

  test('the code record holds only an HMAC, attempts and expiry, with a TTL', async () => {
    const { helper, keyPrefix, last } = codes({ ttlSeconds: 300 })
    await helper.issue('a@example.com')
    const key = `${keyPrefix}:code:a@example.com`
    const record = await redis.hgetall(key)
    expect(Object.keys(record).sort()).toEqual(['attempts', 'expiresAt', 'hash'])
    expect(record.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify(record)).not.toContain(last())
    const ttl = await redis.pttl(key)
    expect(ttl).toBeGreaterThan(290_000)
    expect(ttl).toBeLessThanOrEqual(300_000)
  })

  test('the sixth code in an hour is refused with retryAfterMs; codes are allowed again as the window moves', async () => {
    // A 2-s window stands in for the hour.
    const { helper } = codes({ perEmail: { max: 5, windowSeconds: 2 } })
    const email = 'busy@example.com'
    for (let i = 0; i < 3; i++) await helper.issue(email)
    await sleep(1000)
    for (let i = 0; i < 2; i++) await helper.issue(email)
    const refused = await helper.issue(email).catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(RateLimitError)
    expect(refused).toMatchObject({ code: 'E_RATE_LIMITED', field: 'email' })
    // The first three leave the window about 2 s after they were issued.
    const { retryAfterMs } = refused as RateLimitError
    expect(retryAfterMs).toBeGreaterThan(800)
    expect(retryAfterMs).toBeLessThanOrEqual(1000)
    // Another address is not affected.
    await helper.issue('other@example.com')

    await sleep(retryAfterMs + 20)
    // Exactly three have left: three more are allowed, and a fourth is not (a sliding window, not a reset).
    for (let i = 0; i < 3; i++) await helper.issue(email)
    await expect(helper.issue(email)).rejects.toMatchObject({ code: 'E_RATE_LIMITED' })
  })

  test('perIp limits across addresses; a request refused by IP does not count against its address', async () => {
    const { helper } = codes({ perEmail: { max: 1, windowSeconds: 60 }, perIp: { max: 2, windowSeconds: 60 } })
    await helper.issue('one@example.com', { ip: '203.0.113.7' })
    await helper.issue('two@example.com', { ip: '203.0.113.7' })
    await expect(helper.issue('three@example.com', { ip: '203.0.113.7' })).rejects.toMatchObject({
      code: 'E_RATE_LIMITED',
      field: 'ip',
      retryAfterMs: expect.any(Number),
    })
    // perEmail allows one per minute, and three@ has not used it.
    await helper.issue('three@example.com', { ip: '198.51.100.1' })
  })

  test('perIp counts one client once: IPv4-mapped IPv6 as its IPv4, other IPv6 by /64, in any spelling', async () => {
    const { helper } = codes({ perEmail: { max: 100, windowSeconds: 60 }, perIp: { max: 2, windowSeconds: 60 } })
    const refused = { code: 'E_RATE_LIMITED', field: 'ip' }
    // One IPv4 client, reached over IPv4 and over a dual-stack socket.
    await helper.issue('v4-a@example.com', { ip: '203.0.113.9' })
    await helper.issue('v4-b@example.com', { ip: '::ffff:203.0.113.9' })
    await expect(helper.issue('v4-c@example.com', { ip: '::FFFF:cb00:7109' })).rejects.toMatchObject(refused)
    // One IPv6 /64: every address in it, compressed or not, with a zone id or in brackets.
    await helper.issue('v6-a@example.com', { ip: '2001:db8:1:2::1' })
    await helper.issue('v6-b@example.com', { ip: '2001:DB8:1:2:ffff:0:0:7' })
    await expect(helper.issue('v6-c@example.com', { ip: '2001:db8:0001:0002:0:0:0:9%eth0' })).rejects.toMatchObject(
      refused,
    )
    await expect(helper.issue('v6-d@example.com', { ip: '[2001:db8:1:2::abcd]' })).rejects.toMatchObject(refused)
    // The next /64 is another client.
    await helper.issue('v6-e@example.com', { ip: '2001:db8:1:3::1' })
    // A string that is no IP address counts as itself, trimmed.
    await helper.issue('odd-a@example.com', { ip: 'unknown' })
    await helper.issue('odd-b@example.com', { ip: ' unknown ' })
    await expect(helper.issue('odd-c@example.com', { ip: 'unknown' })).rejects.toMatchObject(refused)
  })

  test('perEmail counts an inbox once: the address without its +tag, any case (Gmail: without dots)', async () => {
    const sentTo: string[] = []
    const { helper } = codes({
      perEmail: { max: 2, windowSeconds: 60 },
      build: ({ email, code }) => {
        sentTo.push(email)
        return { subject: 'Your code', text: `Your code is ${code}` }
      },
    })
    await helper.issue('victim+1@gmail.com')
    await helper.issue('Victim+2@Gmail.com')
    const refused = { code: 'E_RATE_LIMITED', field: 'email' }
    await expect(helper.issue('victim+3@gmail.com')).rejects.toMatchObject(refused)
    await expect(helper.issue('victim@gmail.com')).rejects.toMatchObject(refused)
    await expect(helper.issue('v.i.c.t.i.m+4@googlemail.com')).rejects.toMatchObject(refused)
    // Another inbox has its own budget; outside Gmail dots are part of the address.
    await helper.issue('someone.else@gmail.com')
    await helper.issue('a.b+1@example.com')
    await helper.issue('a.b+2@example.com')
    await expect(helper.issue('a.b+3@example.com')).rejects.toMatchObject(refused)
    await helper.issue('ab@example.com')
    // Each code went to the address as given (lower-cased), tag and all.
    expect(sentTo.slice(0, 2)).toEqual(['victim+1@gmail.com', 'victim+2@gmail.com'])
  })

  test('a code verifies only for the address it was sent to, not for the same inbox under another tag', async () => {
    const { helper, last } = codes()
    await helper.issue('reader+news@example.com')
    const code = last()
    expect(await helper.verify('reader@example.com', code)).toEqual({ ok: false, reason: 'expired' })
    expect(await helper.verify('reader+other@example.com', code)).toEqual({ ok: false, reason: 'expired' })
    expect(await helper.verify('Reader+News@Example.com', code)).toEqual({ ok: true })
  })

  test('a Redis error leaves as E_REDIS with the Redis reply as cause', async () => {
    const { helper, keyPrefix } = codes()
    // A key of the wrong type makes the verify script fail inside Redis.
    await redis.set(`${keyPrefix}:code:wrong@example.com`, 'not a hash')
    const error = await helper.verify('wrong@example.com', '123456').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toMatchObject({ code: 'E_REDIS', message: expect.stringMatching(/verify: .*WRONGTYPE/) })
    expect((error as MailstreamError).cause).toBeInstanceOf(ReplyError)
  })

  test('five wrong codes lock it: the right code then fails too', async () => {
    const { helper, last } = codes()
    await helper.issue('guess@example.com')
    const right = last()
    const wrong = right === '000000' ? '111111' : '000000'
    const answers = []
    for (let i = 0; i < 5; i++) answers.push(await helper.verify('guess@example.com', wrong))
    expect(answers.map((answer) => (answer.ok ? 'ok' : answer.reason))).toEqual([
      'invalid',
      'invalid',
      'invalid',
      'invalid',
      'too_many_attempts',
    ])
    expect(await helper.verify('guess@example.com', right)).toEqual({ ok: false, reason: 'too_many_attempts' })
  })

  test('concurrent guesses are counted before they are compared: never more than maxAttempts tries', async () => {
    const { helper, last } = codes()
    await helper.issue('burst@example.com')
    const right = last()
    const guesses = Array.from({ length: 40 }, (_, i) => String(i).padStart(6, '0')).filter((code) => code !== right)
    const answers = await Promise.all([...guesses, right].map((code) => helper.verify('burst@example.com', code)))
    // Five tries were compared; the rest were refused as locked without a comparison.
    const compared = answers.filter((answer) => answer.ok || answer.reason === 'invalid').length
    expect(compared).toBeLessThanOrEqual(5)
    expect(answers.filter((answer) => !answer.ok && answer.reason === 'too_many_attempts').length).toBeGreaterThan(30)
  })

  test('two concurrent verifications with the right code: exactly one succeeds', async () => {
    const { helper, last } = codes()
    await helper.issue('race@example.com')
    const answers = await Promise.all(Array.from({ length: 5 }, () => helper.verify('race@example.com', last())))
    expect(answers.filter((answer) => answer.ok)).toHaveLength(1)
  })

  test('an expired code is rejected', async () => {
    const { helper, last } = codes({ ttlSeconds: 1 })
    await helper.issue('late@example.com')
    await sleep(1100)
    expect(await helper.verify('late@example.com', last())).toEqual({ ok: false, reason: 'expired' })
    expect(await helper.verify('never@example.com', '123456')).toEqual({ ok: false, reason: 'expired' })
  })

  test('a new code replaces the old one', async () => {
    const { helper, issued } = codes()
    await helper.issue('twice@example.com')
    await helper.issue('twice@example.com')
    const [first, second] = issued as [string, string]
    if (first !== second) {
      expect(await helper.verify('twice@example.com', first)).toEqual({ ok: false, reason: 'invalid' })
    }
    expect(await helper.verify('twice@example.com', second)).toEqual({ ok: true })
  })

  test('by default the keys follow the queue prefix: two queues on one Redis share no codes and no limits', async () => {
    const email = 'run@example.com'
    const helperOn = (prefix: string) => {
      const issued: string[] = []
      const helper = createVerificationCodes({
        queue: createEmailQueue({ redis, prefix }),
        secret: SECRET,
        build: ({ code }) => {
          issued.push(code)
          return { subject: 'Your code', text: `Your code is ${code}` }
        },
      })
      return { helper, last: () => issued.at(-1) as string }
    }
    const [first, second] = [uniquePrefix('vq'), uniquePrefix('vq')]
    const a = helperOn(first)
    for (let i = 0; i < 5; i++) await a.helper.issue(email)
    await expect(a.helper.issue(email)).rejects.toMatchObject({ code: 'E_RATE_LIMITED', field: 'email' })
    // Another test run (another queue prefix) starts with its own budget and its own codes.
    const b = helperOn(second)
    await b.helper.issue(email)
    expect(await b.helper.verify(email, a.last())).toMatchObject({ ok: false })
    expect(await a.helper.verify(email, a.last())).toEqual({ ok: true })
    expect(await b.helper.verify(email, b.last())).toEqual({ ok: true })

    const keys = await keysOf(redis, `${first}:verification`)
    expect(keys).toContain(`${first}:verification:code:${email}`)
    expect(keys.some((key) => key.startsWith(`${first}:verification:issued:email:`))).toBe(true)
    expect(await redis.exists(`verification:code:${email}`)).toBe(0)
  })

  test('an explicit keyPrefix wins; a queue not made by createEmailQueue keeps the prefix `verification`', async () => {
    const email = `plain-${Date.now()}@example.com`
    const queue = createEmailQueue({ redis, prefix: uniquePrefix('vq') })
    const keyPrefix = uniquePrefix('explicit')
    const explicit = createVerificationCodes({ queue, secret: SECRET, keyPrefix })
    await explicit.issue(email)
    expect(await redis.exists(`${keyPrefix}:code:${email}`)).toBe(1)
    expect(await redis.exists(`${queue.prefix}:verification:code:${email}`)).toBe(0)

    const plain = createVerificationCodes({ redis, queue: { enqueue: (job) => queue.enqueue(job) }, secret: SECRET })
    await plain.issue(email)
    expect(await redis.exists(`verification:code:${email}`)).toBe(1)
    await redis.del(`verification:code:${email}`)
  })

  test('bad addresses are E_VALIDATION; bad options are E_CONFIG naming the field', async () => {
    const { helper } = codes()
    await expect(helper.issue('not an address')).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'email' })
    await expect(helper.issue('a@example.com\r\nBcc: x@example.com')).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'email',
    })
    await expect(helper.verify('nobody', '123456')).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'email' })
    const queue = createEmailQueue({ redis, prefix: uniquePrefix('vq') })
    expect(() => createVerificationCodes({ queue, secret: 'short' })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'secret' }),
    )
    expect(() => createVerificationCodes({ queue, secret: SECRET, length: 3 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'length' }),
    )
    expect(() => createVerificationCodes({ queue, secret: SECRET, commandTimeoutMs: 0 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'commandTimeoutMs' }),
    )
    expect(() => createVerificationCodes({ queue, secret: SECRET, onError: true as never })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'onError' }),
    )
  })
})
