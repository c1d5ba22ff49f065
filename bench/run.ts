/**
 * npm run bench: mailstream beside BullMQ and a bare Redis Streams loop, on one Redis started for
 * the run (no persistence), each measurement in its own process, the systems taking turns round
 * by round, medians of BENCH_RUNS rounds (at least 3). Every jobs/s figure comes with the CPU
 * µs per job of the measured process and of redis-server. Prints a table, the bars and whether
 * they are met, and writes bench/results.json (commit it with the docs/benchmarks.md table).
 *
 *   npm run bench                  every scenario (about 10 minutes on 2 cores)
 *   npm run bench -- --quick       a fifth of the jobs, no 1M RSS drain (about 2 minutes)
 *   npm run bench -- drain rss     only these
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
const RUNS = Math.max(3, Number(process.env.BENCH_RUNS ?? 3))
const args = process.argv.slice(2)
const QUICK = args.includes('--quick')
const only = args.filter((arg) => !arg.startsWith('--'))
/** Job counts scaled down by --quick. */
const jobs = (n: number) => (QUICK ? Math.round(n / 5) : n)

interface Measurement {
  scenario: string
  system: string
  n: number
  peakRssMb: number
  jobsPerSec?: number
  cpuUsPerJob?: number
  redisCpuUsPerJob?: number
  redisBytesPerJob?: number
  p50Ms?: number
  p99Ms?: number
  /** Ms from the start of a drain to its first job done. */
  firstMs?: number
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

const ALL = ['mailstream', 'bullmq', 'bare']
const plan: Step[] = [
  {
    scenario: 'single',
    title: `enqueue() one call at a time, 50 concurrent callers, ${jobs(20_000) / 1000}k jobs`,
    n: jobs(20_000),
    systems: ALL,
    runs: RUNS,
  },
  { scenario: 'enqueue', title: `bulk enqueue ${jobs(100_000) / 1000}k`, n: jobs(100_000), systems: ALL, runs: RUNS },
  {
    scenario: 'drain',
    title: `drain ${jobs(100_000) / 1000}k, memory transport, concurrency 100`,
    n: jobs(100_000),
    systems: ALL,
    fill: 'fill',
    runs: RUNS,
  },
  {
    scenario: 'newsletter',
    title: `drain ${jobs(20_000) / 1000}k newsletters rendered from a template`,
    n: jobs(20_000),
    systems: ALL,
    fill: 'newsletter-fill',
    runs: RUNS,
  },
  {
    scenario: 'latency',
    title: `200 high jobs behind a ${jobs(50_000) / 1000}k low backlog at 200/s`,
    n: jobs(50_000),
    systems: ['mailstream', 'bullmq'],
    runs: RUNS,
  },
  {
    scenario: 'outbox',
    title: `outbox: ${jobs(10_000) / 1000}k transactions (50 callers) committed to PostgreSQL, 2 relays to Redis (p50/p99: COMMIT to Redis); bare: enqueue() after COMMIT`,
    n: jobs(10_000),
    systems: ['mailstream', 'bare'],
    runs: RUNS,
  },
  ...(QUICK
    ? []
    : [
        {
          scenario: 'rss',
          title: 'drain 1M: worker RSS',
          n: 1_000_000,
          systems: ['mailstream'],
          fill: 'fill',
          runs: 1,
        },
      ]),
]

/** What each system is given, stated beside the results. */
const OPTIONS = {
  mailstream:
    'createEmailQueue({ redis, prefix }) defaults: maxAttempts 3 with backoff, status hash per job kept 24 h, ' +
    'idempotency keys 24 h, dead letters kept until purged; worker concurrency 100, memory transport',
  bullmq:
    "Queue/Worker on the same ioredis client; every job { attempts: 3, backoff: { type: 'exponential', delay: 1000 }, " +
    'removeOnComplete: { count: 1000 }, removeOnFail: { count: 5000 } } (the production settings of its docs); ' +
    'Worker concurrency 100, no-op processor',
  bare: 'XADD to one stream (pipelined for bulk), XREADGROUP COUNT 100 + JSON.parse + pipelined XACK/XDEL: no status, no retries',
}

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
    '--external',
    'pg',
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
        for (const field of [
          'jobsPerSec',
          'cpuUsPerJob',
          'redisCpuUsPerJob',
          'p50Ms',
          'p99Ms',
          'firstMs',
          'peakRssMb',
          'redisBytesPerJob',
        ] as const) {
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

const cell = (value?: number) => (value === undefined ? '' : String(value))
const rows = [
  [
    'scenario',
    'system',
    'jobs/s',
    'vs BullMQ',
    'vs bare',
    'CPU µs/job (process + Redis)',
    'p50 ms',
    'p99 ms',
    'peak RSS MB',
    'Redis B/job',
  ],
]
for (const step of plan) {
  for (const system of step.systems) {
    const m = of(step.scenario, system)
    if (!m) continue
    const mine = system === 'mailstream'
    rows.push([
      step.title,
      system,
      cell(m.jobsPerSec),
      mine ? x(ratio(m.jobsPerSec, of(step.scenario, 'bullmq')?.jobsPerSec)) : '',
      mine ? x(ratio(m.jobsPerSec, of(step.scenario, 'bare')?.jobsPerSec)) : '',
      m.cpuUsPerJob === undefined ? '' : `${m.cpuUsPerJob} + ${m.redisCpuUsPerJob}`,
      cell(m.p50Ms),
      cell(m.p99Ms),
      String(m.peakRssMb),
      cell(m.redisBytesPerJob),
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
const bars: { bar: string; met: boolean | undefined; measured: string; ratio?: number }[] = []
/** A bar `mine >= times * theirs` (or `<=` when lower is better), with the ratio it measured. */
function versus(bar: string, mine: number | undefined, theirs: number | undefined, times: number, lower = false) {
  const measured = ratio(mine, theirs)
  bars.push({
    bar,
    met: measured === undefined ? undefined : lower ? measured <= times : measured >= times,
    measured: measured === undefined ? '' : `${x(measured)} (${mine} vs ${theirs})`,
    ...(measured !== undefined && { ratio: Math.round(measured * 100) / 100 }),
  })
}
const mineSingle = of('single', 'mailstream')
const theirSingle = of('single', 'bullmq')
versus('single enqueue() >= 1.5x BullMQ queue.add (jobs/s)', mineSingle?.jobsPerSec, theirSingle?.jobsPerSec, 1.5)
versus(
  'single enqueue() client CPU per job <= 0.5x BullMQ',
  mineSingle?.cpuUsPerJob,
  theirSingle?.cpuUsPerJob,
  0.5,
  true,
)
versus('single enqueue() p99 <= BullMQ', mineSingle?.p99Ms, theirSingle?.p99Ms, 1, true)
versus('bulk enqueue >= 3x BullMQ', of('enqueue', 'mailstream')?.jobsPerSec, of('enqueue', 'bullmq')?.jobsPerSec, 3)
versus('drain >= 3x BullMQ', of('drain', 'mailstream')?.jobsPerSec, of('drain', 'bullmq')?.jobsPerSec, 3)
const drained = of('drain', 'mailstream')
if (drained?.cpuUsPerJob !== undefined && drained.redisCpuUsPerJob !== undefined) {
  const total = Math.round((drained.cpuUsPerJob + drained.redisCpuUsPerJob) * 10) / 10
  bars.push({ bar: 'drain CPU per job (worker + Redis) <= 30 µs', met: total <= 30, measured: `${total} µs` })
}
const newsletter = of('newsletter', 'mailstream')
if (newsletter?.jobsPerSec !== undefined && newsletter.cpuUsPerJob !== undefined) {
  bars.push({
    bar: 'rendered newsletter >= 10,000 emails/s through one worker',
    met: newsletter.jobsPerSec >= 10_000,
    measured: `${newsletter.jobsPerSec}/s`,
  })
  bars.push({
    bar: 'rendered newsletter worker CPU <= 100 µs per email',
    met: newsletter.cpuUsPerJob <= 100,
    measured: `${newsletter.cpuUsPerJob} µs`,
  })
}
if (newsletter?.firstMs !== undefined) {
  bars.push({
    bar: "an issue's first email <= 50 ms after the worker starts",
    met: newsletter.firstMs <= 50,
    measured: `${newsletter.firstMs} ms`,
  })
}
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
for (const [system, options] of Object.entries(OPTIONS)) console.log(`${system}: ${options}`)
console.log(`medians of ${RUNS} rounds${QUICK ? ' (--quick)' : ''}; systems interleaved round by round`)
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
      quick: QUICK,
      note: 'medians of the rounds; the systems take turns round by round; CPU is µs per job of the measured process and of redis-server',
      options: OPTIONS,
      results,
      bars,
    },
    null,
    2,
  )}\n`,
)
console.log('\nwritten: bench/results.json')
