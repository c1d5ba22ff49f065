import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { afterAll, expect, test } from 'vitest'
import { createEmailQueue } from '../../src/index.js'
import { connect, redisUrl, uniquePrefix } from '../helpers/redis.js'

const root = join(import.meta.dirname, '..', '..')
const redis = connect()
const children: ChildProcessWithoutNullStreams[] = []
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
})

/** A worker in its own node process (tsx + a hook that loads .lua as text). */
function spawnWorker(prefix: string, perSecond: number, burst: number) {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './test/fixtures/text-register.mjs',
      'test/fixtures/rate-worker.ts',
      redisUrl(),
      prefix,
      String(perSecond),
      String(burst),
    ],
    { cwd: root, stdio: 'pipe' },
  )
  children.push(child)
  let stderr = ''
  child.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const lines = createInterface({ input: child.stdout })
  const next = () =>
    new Promise<string>((resolve, reject) => {
      lines.once('line', resolve)
      child.once('exit', (code) => reject(new Error(`worker process exited with ${code}: ${stderr}`)))
    })
  return { child, next }
}

/** The most sends in any closed window [t, t + windowMs]. */
function maxInWindow(sorted: number[], windowMs: number): number {
  let max = 0
  let end = 0
  for (let start = 0; start < sorted.length; start++) {
    while (end < sorted.length && (sorted[end] as number) <= (sorted[start] as number) + windowMs) end++
    max = Math.max(max, end - start)
  }
  return max
}

test('4 worker processes on one prefix share 50 per second: no 1-s window over 50 + burst, mean at least 95 %', async () => {
  const prefix = uniquePrefix('procs')
  const perSecond = 50
  const burst = 5
  const seconds = 10
  const queue = createEmailQueue({ redis, prefix })
  // More than the run can send, so that every worker is saturated throughout.
  await queue.enqueueMany(
    Array.from({ length: 800 }, (_, i) => ({
      type: 'newsletter',
      to: `reader${i}@example.com`,
      subject: 'Issue',
      text: 'Hello',
      priority: 'low' as const,
    })),
  )
  const workers = Array.from({ length: 4 }, () => spawnWorker(prefix, perSecond, burst))
  expect(await Promise.all(workers.map((worker) => worker.next()))).toEqual(['ready', 'ready', 'ready', 'ready'])
  for (const worker of workers) worker.child.stdin.write('go\n')
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  const replies = workers.map((worker) => worker.next())
  for (const worker of workers) worker.child.stdin.write('stop\n')
  const results = (await Promise.all(replies)).map((line) => JSON.parse(line) as { sentAt: number[]; errors: string[] })

  expect(results.flatMap((result) => result.errors)).toEqual([])
  // Every process took part.
  for (const result of results) expect(result.sentAt.length).toBeGreaterThan(0)
  const sentAt = results.flatMap((result) => result.sentAt).sort((a, b) => a - b)
  const first = sentAt[0] as number
  const last = sentAt[sentAt.length - 1] as number
  const meanPerSecond = ((sentAt.length - 1) * 1000) / (last - first)
  const maxPerSecondWindow = maxInWindow(sentAt, 1000)
  console.info(
    `4 processes, ${perSecond}/s burst ${burst}: ${sentAt.length} sends in ${((last - first) / 1000).toFixed(2)} s, ` +
      `mean ${meanPerSecond.toFixed(2)}/s, max in a 1-s window ${maxPerSecondWindow}, ` +
      `max in a 100-ms window ${maxInWindow(sentAt, 100)}, per process ${results.map((r) => r.sentAt.length).join('/')}`,
  )
  expect(maxPerSecondWindow).toBeLessThanOrEqual(perSecond + burst)
  expect(meanPerSecond).toBeGreaterThanOrEqual(0.95 * perSecond)
  await queue.close()
}, 60_000)
