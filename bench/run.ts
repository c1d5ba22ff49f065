/**
 * npm run bench: mailstream beside BullMQ and a bare Redis Streams loop, on one Redis started for
 * the run, each measurement in its own process. Prints a table and writes bench/results.json.
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startRedisServer } from '../scripts/lib/redis-server.js'

const run = promisify(execFile)
const here = import.meta.dirname
const root = join(here, '..')
const childJs = join(root, '.tmp', 'bench', 'child.js')

// Children run as plain JavaScript on node, so that their RSS is not a TypeScript loader's.
await run(
  join(root, 'node_modules', '.bin', 'tsup'),
  [
    'bench/child.ts',
    '--format',
    'esm',
    '--out-dir',
    '.tmp/bench',
    '--no-config',
    '--silent',
    '--external',
    'mailstream',
    '--external',
    'bullmq',
  ],
  { cwd: root },
)

async function measure(scenario: string, system: string, n: number): Promise<Measurement> {
  const { stdout } = await run(process.execPath, [childJs, scenario, system], {
    env: { ...process.env, REDIS_URL: redis.url, N: String(n) },
    maxBuffer: 64 * 1024 * 1024,
  })
  return JSON.parse(stdout.trim().split('\n').pop() as string) as Measurement
}

interface Measurement {
  scenario: string
  system: string
  n: number
  jobsPerSec?: number
  peakRssMb: number
  redisBytesPerJob?: number
  [key: string]: unknown
}

const plan: { scenario: string; n: number; systems: string[]; title: string }[] = [
  { scenario: 'enqueue', n: 100_000, systems: ['mailstream', 'bullmq', 'bare'], title: 'enqueue 100k' },
  { scenario: 'drain', n: 100_000, systems: ['mailstream', 'bullmq', 'bare'], title: 'drain 100k, concurrency 100' },
]

const only = process.argv.slice(2)
const redis = await startRedisServer()
const results: Measurement[] = []
try {
  for (const step of plan) {
    if (only.length && !only.includes(step.scenario)) continue
    for (const system of step.systems) {
      if (step.scenario === 'drain') await measure('fill', system, step.n)
      const measurement = await measure(step.scenario, system, step.n)
      results.push(measurement)
      process.stderr.write(`${step.title} ${system}: ${JSON.stringify(measurement)}\n`)
    }
  }
} finally {
  await redis.stop()
  redis.cleanup()
}

const ratio = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : '-')
const rows = [['scenario', 'system', 'jobs/s', 'vs BullMQ', 'vs bare', 'peak RSS MB', 'Redis B/job']]
for (const step of plan) {
  const of = (system: string) => results.find((r) => r.scenario === step.scenario && r.system === system)
  for (const system of step.systems) {
    const m = of(system)
    if (!m) continue
    rows.push([
      step.title,
      system,
      String(m.jobsPerSec ?? '-'),
      system === 'mailstream' ? ratio(m.jobsPerSec, of('bullmq')?.jobsPerSec) : '',
      system === 'mailstream' ? ratio(m.jobsPerSec, of('bare')?.jobsPerSec) : '',
      String(m.peakRssMb),
      m.redisBytesPerJob === undefined ? '' : String(m.redisBytesPerJob),
    ])
  }
}
const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? []
for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  '))

writeFileSync(
  join(here, 'results.json'),
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, results }, null, 2)}\n`,
)
console.log('\nwritten: bench/results.json')
