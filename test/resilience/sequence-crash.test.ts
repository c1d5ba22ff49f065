import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { expect, test } from 'vitest'
import { createEmailQueue } from '../../src/index.js'
import { addressHash, createSequences, sequenceJobId } from '../../src/sequences/index.js'
import { crashSeries } from '../fixtures/sequence-runner.js'
import { harness, sendCounts } from '../helpers/queue.js'
import { connect, keysOf, onCluster, redisUrl, uniquePrefix, waitUntil } from '../helpers/redis.js'

const root = join(import.meta.dirname, '..', '..')
const READERS = 150
const STEPS = ['one', 'two', 'three']

test.skipIf(onCluster())(
  'a runner SIGKILLed in the middle of a series: a second one finishes it, every email exactly once',
  async () => {
    const redis = connect()
    const prefix = uniquePrefix('seq-crash')
    const queue = createEmailQueue({ redis, prefix })
    const addresses = Array.from({ length: READERS }, (_, i) => `reader-${i}@example.com`)
    const setup = createSequences({ queue, sequences: [crashSeries] })
    for (const address of addresses) await setup.enroll('crash', address)

    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        './test/fixtures/text-register.mjs',
        'test/fixtures/sequence-runner.ts',
        redisUrl(),
        prefix,
      ],
      { cwd: root, stdio: 'pipe' },
    )
    let stderr = ''
    child.stderr.on('data', (chunk) => {
      stderr += chunk
    })
    const exited = new Promise((resolve) => child.once('exit', resolve))
    const statusKeys = async () => (await keysOf(redis, `${prefix}:status`)).length
    // Killed once about a third of the emails are written: enrolments at every step, some claimed.
    await waitUntil(async () => (await statusKeys()) >= READERS, 30_000, 'the child to write a third of the emails')
    child.kill('SIGKILL')
    await exited
    // Some enrolments were under the dead runner's lease (due 1 s on), not in a 20 ms delay.
    const leased = await redis.zcount(`${prefix}:seq-due`, Date.now() + 300, '+inf')
    expect(leased).toBeGreaterThan(0)
    expect(stderr).toBe('')
    const atKill = await statusKeys()
    expect(atKill).toBeLessThan(READERS * STEPS.length)

    // The second runner: its clock past the dead one's leases.
    const second = createSequences({ queue, sequences: [crashSeries], leaseMs: 1000 })
    await waitUntil(
      async () => {
        await second.runOnce({ now: Date.now() + 2000 })
        return (await second.stats('crash')).done === READERS
      },
      30_000,
      'the second runner to finish every series',
    )

    const expected = addresses.flatMap((address) =>
      STEPS.map((step) => `${prefix}:status:${sequenceJobId('crash', addressHash(address), 1, step)}`),
    )
    expect(await keysOf(redis, `${prefix}:status`)).toEqual(expected.sort())
    // Written once each: a second enqueue of a step would be a duplicate, never a second entry.
    expect(await redis.xlen(`${prefix}:send:normal`)).toBe(READERS * STEPS.length)
    const stats = await second.stats('crash')
    expect(stats).toMatchObject({ enrolled: READERS, active: 0, waiting: 0, done: READERS, exited: 0 })
    expect(stats.steps.filter((step) => step.kind === 'send').map((step) => step.sent)).toEqual([
      READERS,
      READERS,
      READERS,
    ])
    expect(await redis.zcard(`${prefix}:seq-due`)).toBe(0)

    // And a worker sends each of them exactly once.
    const { transport, worker } = harness(redis, prefix)
    await worker({ concurrency: 50 }).start()
    await waitUntil(() => transport.messages.length >= READERS * STEPS.length, 30_000, 'every email to be sent')
    const counts = sendCounts(transport)
    expect(counts.size).toBe(READERS * STEPS.length)
    expect([...counts.values()].every((count) => count === 1)).toBe(true)
    await queue.close()
  },
)
