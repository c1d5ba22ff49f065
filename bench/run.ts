/**
 * npm run bench: mailstream beside BullMQ and a bare Redis Streams loop, on one Redis started for
 * the run (no persistence), each measurement in its own process, medians of BENCH_RUNS runs.
 * Prints a table, the bars and whether they are met, and writes bench/results.json.
 *
 *   npm run bench                 every scenario
 *   npm run bench -- drain rss    only these
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { startRedisServer } from '../scripts/lib/redis-server.js'

const run = promisify(execFile)
const here = import.meta.dirname
const root = join(here, '..')
const childJs = join(root, '.tmp', 'bench', 'child.js')
const RUNS = Number(process.env.BENCH_RUNS ?? 3)

interface Measurement {
  scenario: string
  system: string
  n: number
  peakRssMb: number
  jobsPerSec?: number
  redisBytesPerJob?: number
  p50Ms?: number
  p99Ms?: number
  rssMbPer100kJobs?: number
  [key: string]: unknown
}

interface Step {
  scenario: string
  title: string
  n: number
  systems: string[]
  /** Scenario that fills the queue first (not measured). */
  fill?: string
  runs: number
}

const plan: Step[] = [
  { scenario: 'enqueue', title: 'enqueue 100k', n: 100_000, systems: ['mailstream', 'bullmq', 'bare'], runs: RUNS },
  {
    scenario: 'drain',
    title: 'drain 100k, memory transport, concurrency 100',
    n: 100_000,
    systems: ['mailstream', 'bullmq', 'bare'],
    fill: 'fill',
    runs: RUNS,
  },
  {
    scenario: 'newsletter',
    title: 'drain 20k newsletters rendered from a template',
    n: 20_000,
    systems: ['mailstream', 'bullmq', 'bare'],
    fill: 'newsletter-fill',
    runs: RUNS,
  },
  {
    scenario: 'latency',
    title: '200 high jobs behind a 50k low backlog at 200/s',
    n: 50_000,
    systems: ['mailstream', 'bullmq'],
    runs: 1,
  },
  { scenario: 'rss', title: 'drain 1M: worker RSS', n: 1_000_000, systems: ['mailstream'], fill: 'fill', runs: 1 },
]

const only = process.argv.slice(2)
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
const redis = await startRedisServer()

async function measure(scenario: string, system: string, n: number): Promise<Measurement> {
  const { stdout } = await run(process.execPath, [childJs, scenario, system], {
    env: { ...process.env, REDIS_URL: redis.url, N: String(n) },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 15 * 60_000,
  })
  return JSON.parse(stdout.trim().split('\n').pop() as string) as Measurement
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] as number
}

const results: (Measurement & { runs: Measurement[] })[] = []
try {
  for (const step of plan) {
    if (only.length && !only.includes(step.scenario)) continue
    const runs = new Map<string, Measurement[]>(step.systems.map((system) => [system, []]))
    // Systems take turns, run after run, so that a slow moment of the machine hits all of them.
    for (let round = 0; round < step.runs; round++) {
      for (const system of step.systems) {
        if (step.fill) await measure(step.fill, system, step.n)
        const measurement = await measure(step.scenario, system, step.n)
        runs.get(system)?.push(measurement)
        const { samples: _samples, ...shown } = measurement
        process.stderr.write(`${step.title} | ${system} | run ${round + 1}: ${JSON.stringify(shown)}\n`)
      }
    }
    for (const [system, measured] of runs) {
      const pick = measured.length === 1 ? (measured[0] as Measurement) : { ...(measured[0] as Measurement) }
      if (measured.length > 1) {
        for (const field of ['jobsPerSec', 'peakRssMb', 'redisBytesPerJob'] as const) {
          const values = measured.map((m) => m[field]).filter((v): v is number => typeof v === 'number')
          if (values.length) pick[field] = median(values)
        }
      }
      results.push({ ...pick, system, runs: measured })
    }
  }
} finally {
  await redis.stop()
  redis.cleanup()
}

const of = (scenario: string, system: string) => results.find((r) => r.scenario === scenario && r.system === system)
const ratio = (a?: number, b?: number) => (a && b ? a / b : undefined)
const x = (value?: number) => (value === undefined ? '' : `${value.toFixed(2)}x`)

const rows = [
  ['scenario', 'system', 'jobs/s', 'vs BullMQ', 'vs bare', 'p50 ms', 'p99 ms', 'peak RSS MB', 'Redis B/job'],
]
for (const step of plan) {
  for (const system of step.systems) {
    const m = of(step.scenario, system)
    if (!m) continue
    const mine = system === 'mailstream'
    rows.push([
      step.title,
      system,
      m.jobsPerSec === undefined ? '' : String(m.jobsPerSec),
      mine ? x(ratio(m.jobsPerSec, of(step.scenario, 'bullmq')?.jobsPerSec)) : '',
      mine ? x(ratio(m.jobsPerSec, of(step.scenario, 'bare')?.jobsPerSec)) : '',
      m.p50Ms === undefined ? '' : String(m.p50Ms),
      m.p99Ms === undefined ? '' : String(m.p99Ms),
      String(m.peakRssMb),
      m.redisBytesPerJob === undefined ? '' : String(m.redisBytesPerJob),
    ])
  }
}
const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? []
console.log(
  rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n'),
)

// The bars this project holds itself to.
const bars: { bar: string; met: boolean | undefined; measured: string }[] = []
const enqueueRatio = ratio(of('enqueue', 'mailstream')?.jobsPerSec, of('enqueue', 'bullmq')?.jobsPerSec)
bars.push({
  bar: 'enqueue >= 3x BullMQ',
  met: enqueueRatio === undefined ? undefined : enqueueRatio >= 3,
  measured: x(enqueueRatio),
})
const drainRatio = ratio(of('drain', 'mailstream')?.jobsPerSec, of('drain', 'bullmq')?.jobsPerSec)
bars.push({
  bar: 'drain >= 3x BullMQ',
  met: drainRatio === undefined ? undefined : drainRatio >= 3,
  measured: x(drainRatio),
})
const myLatency = of('latency', 'mailstream')
const theirLatency = of('latency', 'bullmq')
if (myLatency?.p99Ms !== undefined) {
  bars.push({
    bar: 'high-priority p99 <= 100 ms and not worse than BullMQ',
    met: myLatency.p99Ms <= 100 && (theirLatency?.p99Ms === undefined || myLatency.p99Ms <= theirLatency.p99Ms),
    measured: `${myLatency.p99Ms} ms (BullMQ ${theirLatency?.p99Ms ?? '-'} ms)`,
  })
}
const long = of('rss', 'mailstream')
if (long?.rssMbPer100kJobs !== undefined) {
  bars.push({
    bar: 'worker RSS flat over a 1M drain, peak < 150 MB',
    met: long.peakRssMb < 150 && Math.abs(long.rssMbPer100kJobs) < 1,
    measured: `peak ${long.peakRssMb} MB, trend ${long.rssMbPer100kJobs} MB per 100k jobs (${long.rssFirstMb} -> ${long.rssLastMb} MB)`,
  })
}
console.log('')
for (const bar of bars) {
  if (bar.met === undefined) continue
  console.log(`${bar.met ? 'met   ' : 'MISSED'}  ${bar.bar}: ${bar.measured}`)
}

writeFileSync(
  join(here, 'results.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      node: process.version,
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      runs: RUNS,
      results,
      bars,
    },
    null,
    2,
  )}\n`,
)
console.log('\nwritten: bench/results.json')
