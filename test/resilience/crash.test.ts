import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { createEmailQueue } from '../../src/index.js'
import { buildPackage } from '../helpers/build.js'
import { connect, redisUrl, uniquePrefix, waitUntil } from '../helpers/redis.js'
import { type SmtpLocal, startSmtpLocal } from '../helpers/smtp-local.js'

// Workers in child processes, killed with SIGKILL while they drain to an SMTP sink.
let dir: string
let cleanup = () => {}
let sink: SmtpLocal
beforeAll(async () => {
  const build = buildPackage()
  dir = build.dir
  cleanup = build.cleanup
  sink = await startSmtpLocal()
}, 120_000)
afterAll(async () => {
  await sink?.close()
  cleanup()
})

const CONCURRENCY = 20

function workerScript(prefix: string): string {
  const file = join(dir, `${prefix}-worker.mjs`)
  writeFileSync(
    file,
    `import { createEmailWorker } from ${JSON.stringify(join(dir, 'index.js'))}
import { createSmtpTransport } from ${JSON.stringify(join(dir, 'smtp.js'))}
const worker = createEmailWorker({
  redis: ${JSON.stringify(redisUrl())},
  prefix: ${JSON.stringify(prefix)},
  transport: createSmtpTransport({ options: { host: '127.0.0.1', port: ${sink.port}, maxConnections: 5, secure: false, ignoreTLS: true } }),
  from: 'news@example.com',
  concurrency: ${CONCURRENCY},
  visibilityTimeoutMs: 1000,
})
await worker.start()
// Reports how many jobs it holds, so that the test knows what a kill can repeat.
setInterval(() => process.stdout.write(worker.inFlight + '\\n'), 10)
`,
  )
  return file
}

interface Child {
  process: ChildProcess
  /** Highest in-flight count reported during the last 200 ms. */
  inFlight(): number
}

function startWorker(script: string): Child {
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const reports: { at: number; value: number }[] = []
  child.stdout?.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line) reports.push({ at: Date.now(), value: Number(line) })
    if (reports.length > 500) reports.splice(0, reports.length - 100)
  })
  return {
    process: child,
    inFlight: () => Math.max(0, ...reports.filter((report) => report.at > Date.now() - 200).map((r) => r.value)),
  }
}

function jobIdOf(raw: Buffer): string {
  return /^X-Job-Id: (\S+)/im.exec(raw.toString('latin1'))?.[1] ?? ''
}

test('workers killed with SIGKILL 5 times while draining 20k jobs: none lost, repeats bounded by what was in flight', async () => {
  const redis = connect()
  const prefix = uniquePrefix('crash')
  const queue = createEmailQueue({ redis, prefix })
  const total = 20_000
  const ids = Array.from({ length: total }, (_, i) => `crash-${i}`)
  for (let from = 0; from < total; from += 5000) {
    await queue.enqueueMany(
      ids.slice(from, from + 5000).map((id) => ({
        id,
        type: 'newsletter',
        to: `${id}@example.com`,
        subject: 'Issue',
        text: 'Hello',
        headers: { 'X-Job-Id': id },
      })),
    )
  }
  const script = workerScript(prefix)
  let inFlightAtKills = 0
  for (let kill = 0; kill < 5; kill++) {
    const child = startWorker(script)
    const before = sink.deliveries.length
    // Let it work for a while (a random amount), then kill it without warning.
    const target = before + 500 + Math.floor(Math.random() * 1500)
    await waitUntil(() => sink.deliveries.length >= target, 60_000, 'deliveries before the kill')
    inFlightAtKills += child.inFlight()
    child.process.kill('SIGKILL')
    await new Promise((resolve) => child.process.once('exit', resolve))
  }
  const last = startWorker(script)
  await waitUntil(
    () => new Set(sink.deliveries.map((delivery) => jobIdOf(delivery.raw))).size === total,
    120_000,
    'every job',
  )
  last.process.kill('SIGTERM')
  await new Promise((resolve) => last.process.once('exit', resolve))

  const counts = new Map<string, number>()
  for (const delivery of sink.deliveries) {
    const id = jobIdOf(delivery.raw)
    counts.set(id, (counts.get(id) ?? 0) + 1)
  }
  expect(counts.size).toBe(total)
  expect(ids.every((id) => counts.has(id))).toBe(true)
  const duplicates = [...counts.values()].reduce((sum, count) => sum + count - 1, 0)
  console.log(
    `crash test: ${duplicates} repeated sends over 5 kills; ${inFlightAtKills} jobs were in flight at the kills`,
  )
  expect(duplicates).toBeLessThanOrEqual(inFlightAtKills)
  for (const id of ids.slice(0, 200)) expect((await queue.getStatus(id))?.status).toBe('sent')
  await queue.close()
}, 240_000)
