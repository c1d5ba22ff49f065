import { describe, expect, test } from 'vitest'
import { GROUP } from '../../src/keys.js'
import type { Transport } from '../../src/transport.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, waitUntil } from '../helpers/redis.js'

const redis = connect()

const streamsOf = (prefix: string) => ['high', 'normal', 'low'].map((priority) => `${prefix}:send:${priority}`)

/** Consumers of the group on a stream, with what each holds. */
async function consumers(stream: string): Promise<{ name: string; pending: number }[]> {
  const rows = (await redis.xinfo('CONSUMERS', stream, GROUP)) as (string | number)[][]
  return rows.map((row) => ({
    name: String(row[row.indexOf('name') + 1]),
    pending: Number(row[row.indexOf('pending') + 1]),
  }))
}

/** A transport whose sends never finish (until aborted), so that a stop runs out of time. */
const hanging: Transport = {
  name: 'hanging',
  send: (_message, { signal }) =>
    new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason))),
}

describe('consumer cleanup on stop', () => {
  test('a clean stop removes the consumer from every stream; stats count only live workers', async () => {
    const { queue, worker, prefix, settled } = harness(redis)
    const first = worker({ consumer: 'first' })
    const second = worker({ consumer: 'second' })
    await first.start()
    await second.start()
    const { id } = await queue.enqueue(testJob())
    await settled(id)
    expect((await queue.stats()).streams.normal.consumers).toBe(2)

    await first.stop()
    for (const stream of streamsOf(prefix)) {
      expect((await consumers(stream)).map((consumer) => consumer.name)).toEqual(['second'])
    }
    const stats = await queue.stats()
    expect(Object.values(stats.streams).map((stream) => stream.consumers)).toEqual([1, 1, 1])
    expect(await queue.metrics()).toMatch(/mailstream_queue_consumers\{priority="normal"\} 1\n/)

    await second.stop()
    for (const stream of streamsOf(prefix)) expect(await consumers(stream)).toEqual([])
    expect((await queue.stats()).streams.normal.consumers).toBe(0)
  })

  test('a stop that leaves a send unfinished keeps the consumer and its entry, for reclaim', async () => {
    const { queue, worker, prefix } = harness(redis)
    const stuck = worker({ consumer: 'stuck', transport: hanging })
    await stuck.start()
    await queue.enqueue(testJob())
    await waitUntil(() => stuck.inFlight === 1, 5000, 'the send to start')
    await stuck.stop({ timeoutMs: 200 })
    const [, normal] = streamsOf(prefix)
    expect(await consumers(normal as string)).toEqual([{ name: 'stuck', pending: 1 }])
    // It holds an entry, so it still counts: that entry is not lost from view.
    expect((await queue.stats()).streams.normal).toMatchObject({ pending: 1, consumers: 1 })
  })

  test('a clean stop keeps a consumer that still holds an entry it lost track of', async () => {
    const { queue, worker, prefix } = harness(redis)
    const w = worker({ consumer: 'forgetful' })
    await w.start()
    w.pause()
    await new Promise((resolve) => setTimeout(resolve, 100))
    // An entry pending under its name that it no longer knows of (as after a lost reply).
    const [high] = streamsOf(prefix) as [string]
    await redis.xadd(high, '*', 'id', 'lost', 'job', '{}')
    await redis.xreadgroup('GROUP', GROUP, 'forgetful', 'COUNT', 1, 'STREAMS', high, '>')
    await w.stop()
    expect(w.inFlight).toBe(0)
    for (const stream of streamsOf(prefix)) {
      expect(await consumers(stream)).toEqual([{ name: 'forgetful', pending: stream === high ? 1 : 0 }])
    }
    expect((await queue.stats()).streams.high.consumers).toBe(1)
  })

  test('stats count a paused worker, not a consumer whose worker is gone', async () => {
    const { queue, worker, prefix } = harness(redis)
    const paused = worker({ consumer: 'paused' })
    await paused.start()
    paused.pause()
    // A consumer left by a worker that crashed holding nothing: registered, with no connection.
    for (const stream of streamsOf(prefix)) await redis.xgroup('CREATECONSUMER', stream, GROUP, 'crashed')
    expect((await consumers(streamsOf(prefix)[1] as string)).map((consumer) => consumer.name).sort()).toEqual([
      'crashed',
      'paused',
    ])
    expect(Object.values((await queue.stats()).streams).map((stream) => stream.consumers)).toEqual([1, 1, 1])
  })
})
