import { describe, expect, onTestFinished, test } from 'vitest'
import { createEmailQueue, createEmailWorker } from '../../src/index.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { createEvents } from '../../src/worker/events.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect, persistentRedis, uniquePrefix, waitUntil } from '../helpers/redis.js'

const redis = connect()

describe('worker.once and worker.off', () => {
  test('once calls its listener for the next event only; its unsubscribe and off both remove it', () => {
    const events = createEvents()
    const calls: string[] = []
    const listener = ({ reason }: { reason: string }) => calls.push(`once ${reason}`)
    events.once('paused', listener)
    events.emit('paused', { reason: 'a' })
    events.emit('paused', { reason: 'b' })
    expect(calls).toEqual(['once a'])

    const unsubscribe = events.once('paused', listener)
    unsubscribe()
    events.once('paused', listener)
    events.off('paused', listener)
    const onListener = ({ reason }: { reason: string }) => calls.push(`on ${reason}`)
    events.on('paused', onListener)
    events.emit('paused', { reason: 'c' })
    events.off('paused', onListener)
    events.emit('paused', { reason: 'd' })
    expect(calls).toEqual(['once a', 'on c'])
  })

  test('a once listener that throws becomes one error event, and is still removed', () => {
    const events = createEvents()
    const errors: string[] = []
    events.on('error', (error) => errors.push(error.message))
    events.once('resumed', () => {
      throw new Error('boom')
    })
    events.emit('resumed', {})
    events.emit('resumed', {})
    expect(errors).toEqual([expect.stringContaining('boom')])
  })

  test('on a worker: once for the first sent job only', async () => {
    const { queue, worker, settled } = harness(redis)
    const w = worker()
    const sent: string[] = []
    w.once('sent', ({ id }) => sent.push(id))
    await w.start()
    const first = await queue.enqueue(testJob())
    await settled(first.id)
    const second = await queue.enqueue(testJob())
    await settled(second.id)
    expect(sent).toEqual([first.id])
  })
})

describe('worker.health', () => {
  test('idle, running, paused with its reason, the last error, stopped', async () => {
    const { queue, worker, settled } = harness(redis)
    const w = worker({ consumer: 'probe' })
    expect(await w.health()).toEqual({
      ok: false,
      state: 'idle',
      running: false,
      paused: false,
      redis: { ok: false, error: 'the worker is not started' },
      inFlight: 0,
      consumer: 'probe',
    })

    await w.start()
    const running = await w.health()
    expect(running).toMatchObject({ ok: true, state: 'running', running: true, paused: false, inFlight: 0 })
    expect(running.redis).toEqual({ ok: true, latencyMs: expect.any(Number) })
    expect(running.lastError).toBeUndefined()

    w.pause('maintenance')
    expect(await w.health()).toMatchObject({ ok: true, paused: true, pauseReason: 'maintenance' })
    w.resume()
    expect(await w.health()).not.toHaveProperty('pauseReason')

    w.on('sent', () => {
      throw new Error('listener failed')
    })
    const { id } = await queue.enqueue(testJob())
    await settled(id)
    await waitUntil(async () => (await w.health()).lastError !== undefined, 5000, 'the error to be recorded')
    expect((await w.health()).lastError).toEqual({
      code: 'E_REDIS',
      message: expect.stringContaining('listener failed'),
      at: expect.any(Number),
    })

    await w.stop()
    expect(await w.health()).toMatchObject({ ok: false, state: 'stopped', running: false, redis: { ok: false } })
  })
})

describe('health against a frozen Redis', () => {
  const start = persistentRedis()

  test('worker.health() and queue.ping() answer within their bounds', async () => {
    const { server } = await start()
    const prefix = uniquePrefix('health')
    const worker = createEmailWorker({
      redis: server.url,
      prefix,
      transport: createMemoryTransport(),
      commandTimeoutMs: 300,
    })
    const queue = createEmailQueue({ redis: server.url, prefix, commandTimeoutMs: 300 })
    onTestFinished(async () => {
      server.resume()
      await worker.stop({ timeoutMs: 1000 })
      await queue.close()
    })
    await worker.start()
    expect(await queue.ping()).toBeGreaterThanOrEqual(0)
    expect((await worker.health()).ok).toBe(true)

    server.pause()
    const began = Date.now()
    const [health, ping] = await Promise.all([worker.health({ timeoutMs: 200 }), queue.ping().catch((error) => error)])
    expect(Date.now() - began).toBeLessThan(5000)
    expect(health).toMatchObject({
      ok: false,
      running: true,
      redis: { ok: false, error: expect.stringContaining('200 ms') },
    })
    expect(ping).toMatchObject({ code: 'E_TIMEOUT' })
    server.resume()
    await waitUntil(async () => (await worker.health()).ok, 5000, 'Redis to answer again')
  })
})
