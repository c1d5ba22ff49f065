import { afterAll, describe, expect, test } from 'vitest'
import { createEmailQueue, type EmailQueue } from '../../src/index.js'
import { parseJob } from '../../src/job.js'
import { providerOfMxHosts, type ResolveMx } from '../../src/providers/mx.js'
import { connect, uniquePrefix } from '../helpers/redis.js'

const redis = connect()
const queues: EmailQueue[] = []
afterAll(async () => {
  await Promise.all(queues.map((queue) => queue.close()))
})

const MX: Record<string, { exchange: string; priority: number }[]> = {
  'corp.example': [
    { exchange: 'alt1.aspmx.l.google.com', priority: 5 },
    { exchange: 'ASPMX.L.GOOGLE.COM.', priority: 1 },
  ],
  'works.example': [{ exchange: 'mx1.works.naver.com', priority: 10 }],
  'ms.example': [{ exchange: 'ms-example.mail.protection.outlook.com', priority: 0 }],
  'own.example': [{ exchange: 'mail.own.example', priority: 10 }],
}

/** A resolver from the table above, counting its lookups; no network. */
function fakeResolver() {
  const calls: string[] = []
  const resolve: ResolveMx = async (domain) => {
    calls.push(domain)
    const records = MX[domain]
    if (!records) throw Object.assign(new Error(`queryMx ENOTFOUND ${domain}`), { code: 'ENOTFOUND' })
    return records
  }
  return { calls, resolve }
}

function queueWith(prefix: string, mx: Parameters<typeof createEmailQueue>[0]['providers']) {
  const queue = createEmailQueue({ redis, prefix, ...(mx && { providers: mx }) })
  queues.push(queue)
  return queue
}

/** The `providers` stored with each job of the normal stream, by id. */
async function storedProviders(prefix: string) {
  const out: Record<string, unknown> = {}
  for (const [, fields] of await redis.xrange(`${prefix}:send:normal`, '-', '+')) {
    out[fields[1] as string] = parseJob(fields[3] as string)?.providers
  }
  return out
}
const job = (id: string, to: string | string[]) => ({ id, type: 'newsletter', to, subject: 'Hi', text: 'Hi' })

describe('MX lookup of unknown domains at enqueue', () => {
  test('the most preferred MX host that names a provider decides', () => {
    expect(providerOfMxHosts(MX['corp.example'] ?? [])).toBe('gmail')
    expect(providerOfMxHosts(MX['works.example'] ?? [])).toBe('naver')
    expect(providerOfMxHosts([{ exchange: 'mx1.hanmail.net', priority: 10 }])).toBe('kakao')
    expect(providerOfMxHosts(MX['ms.example'] ?? [])).toBe('outlook')
    expect(providerOfMxHosts(MX['own.example'] ?? [])).toBe('other')
    // Not fooled by a look-alike host.
    expect(providerOfMxHosts([{ exchange: 'mx.notgoogle.com', priority: 1 }])).toBe('other')
    expect(providerOfMxHosts([])).toBe('other')
  })

  test('company domains are classified by their MX hosts, cached in Redis for every producer', async () => {
    const prefix = uniquePrefix('mx')
    const first = fakeResolver()
    const queue = queueWith(prefix, { mx: { resolve: first.resolve } })
    await queue.enqueue(job('a', ['kim@corp.example', 'lee@works.example', 'park@naver.com']))
    await queue.enqueueMany([job('b', 'x@ms.example'), job('c', 'y@own.example'), job('d', 'z@corp.example')])
    expect(await storedProviders(prefix)).toEqual({
      a: { gmail: 1, naver: 2 },
      b: { outlook: 1 },
      c: { other: 1 },
      d: { gmail: 1 },
    })
    // Known domains are never looked up; each unknown one once.
    expect([...first.calls].sort()).toEqual(['corp.example', 'ms.example', 'own.example', 'works.example'])
    expect(await redis.get(`${prefix}:mx:corp.example`)).toBe('gmail')
    const ttl = await redis.ttl(`${prefix}:mx:corp.example`)
    expect(ttl).toBeGreaterThan(86_000)
    expect(ttl).toBeLessThanOrEqual(86_400)

    // Another producer of the queue agrees without a lookup of its own.
    const second = fakeResolver()
    await queueWith(prefix, { mx: { resolve: second.resolve } }).enqueue(job('e', 'boss@corp.example'))
    expect((await storedProviders(prefix)).e).toEqual({ gmail: 1 })
    expect(second.calls).toEqual([])
  })

  test('a failed or hung lookup is other, cached briefly; without the option nothing is looked up', async () => {
    const prefix = uniquePrefix('mx')
    const { resolve } = fakeResolver()
    const queue = queueWith(prefix, { mx: { resolve, timeoutMs: 50, failureTtlSeconds: 30 } })
    await queue.enqueue(job('f', 'a@missing.example'))
    expect(await redis.get(`${prefix}:mx:missing.example`)).toBe('other')
    expect(await redis.ttl(`${prefix}:mx:missing.example`)).toBeLessThanOrEqual(30)

    const hung = queueWith(prefix, { mx: { resolve: () => new Promise(() => {}), timeoutMs: 50 } })
    const started = performance.now()
    await hung.enqueue(job('g', 'a@slow.example'))
    expect(performance.now() - started).toBeLessThan(1000)
    expect(await redis.get(`${prefix}:mx:slow.example`)).toBe('other')
    expect((await storedProviders(prefix)).g).toEqual({ other: 1 })

    const plain = uniquePrefix('mx')
    await queueWith(plain, undefined).enqueue(job('h', 'kim@corp.example'))
    expect((await storedProviders(plain)).h).toEqual({ other: 1 })
    expect(await redis.exists(`${plain}:mx:corp.example`)).toBe(0)
  })

  test('bad options throw E_CONFIG naming the field', () => {
    expect(() => queueWith(uniquePrefix('mx'), { mx: { timeoutMs: 0 } })).toThrow(/providers\.mx/)
    expect(() => queueWith(uniquePrefix('mx'), { mx: { resolve: 'dns' as never } })).toThrow(/providers\.mx/)
  })
})
