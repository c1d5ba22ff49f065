import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { displayWidth } from '../../src/cli/format.js'
import { createEmailQueue } from '../../src/index.js'
import { buildPackage, root } from '../helpers/build.js'
import { connect, redisUrl, uniquePrefix, waitUntil } from '../helpers/redis.js'

// The command as users run it: a real process, against the run's Redis.
let bin: string
let dir: string
let cleanup = () => {}
beforeAll(() => {
  const build = buildPackage()
  dir = build.dir
  bin = join(dir, 'cli.js')
  cleanup = build.cleanup
}, 300_000)
afterAll(() => cleanup())

const redis = connect()

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

const job = { type: 'welcome', to: 'reader@example.com', subject: 'Hi', text: 'Hello' }

describe('mailstream command', () => {
  test('stats prints depths per stream, and --json the same numbers as queue.stats()', async () => {
    const prefix = uniquePrefix('cli')
    const queue = createEmailQueue({ redis, prefix })
    await queue.enqueueMany([job, job, { ...job, priority: 'high' }, { ...job, delayMs: 60_000 }])
    const text = await cli(['stats', '--redis', redisUrl(), '--prefix', prefix])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^high\s+1\s+0\s+0\s+\S+/m)
    expect(text.stdout).toMatch(/^normal\s+2\s+0\s+0\s+\S+/m)
    expect(text.stdout).toMatch(/^sent\s+0$/m)
    expect(text.stdout).toMatch(/^delayed\s+1$/m)
    const json = await cli(['stats', '--json', '--redis', redisUrl(), '--prefix', prefix])
    // oldestWaitingMs moves with the clock between the two reads.
    const withoutAge = (stats: { streams: Record<string, { oldestWaitingMs?: number }> }) => {
      for (const stream of Object.values(stats.streams)) stream.oldestWaitingMs = undefined
      return stats
    }
    expect(withoutAge(JSON.parse(json.stdout))).toEqual(withoutAge(JSON.parse(JSON.stringify(await queue.stats()))))
  })

  test('status of a job, and exit code 1 for an unknown one', async () => {
    const prefix = uniquePrefix('cli')
    const queue = createEmailQueue({ redis, prefix })
    const { id } = await queue.enqueue(job)
    const found = await cli(['status', id, '--redis', redisUrl(), '--prefix', prefix])
    expect(found.code).toBe(0)
    expect(found.stdout).toMatch(/^status\s+queued$/m)
    expect(found.stdout).toMatch(/^attempts\s+0 of 3$/m)
    const missing = await cli(['status', 'nope', '--redis', redisUrl(), '--prefix', prefix])
    expect(missing.code).toBe(1)
    expect(missing.stderr).toContain('no job nope')
  })

  test('dead list, retry and purge', async () => {
    const prefix = uniquePrefix('cli')
    const queue = createEmailQueue({ redis, prefix })
    await redis.xadd(
      `${prefix}:dead`,
      '*',
      'id',
      'j1',
      'job',
      JSON.stringify({
        id: 'j1',
        ...job,
        to: [{ address: 'a@example.com' }],
        priority: 'normal',
        maxAttempts: 3,
        createdAt: 1,
      }),
      'error',
      'mailbox <b>full</b>',
      'attempts',
      '3',
      'time',
      String(Date.now()),
    )
    await redis.xadd(
      `${prefix}:dead`,
      '*',
      'id',
      'j2',
      'error',
      'no job data',
      'attempts',
      '0',
      'time',
      String(Date.now()),
    )
    const list = await cli(['dead', 'list', '--redis', redisUrl(), '--prefix', prefix])
    expect(list.stdout).toMatch(/^id\s+failed\s+type\s+to\s+subject\s+attempts\s+error$/m)
    expect(list.stdout).toMatch(/^j1\s+\S+\s+welcome\s+a@example\.com\s+Hi\s+3\s+mailbox <b>full<\/b>$/m)
    expect(list.stdout).toMatch(/^j2\s+\S+\s+-\s+-\s+-\s+0\s+no job data$/m)
    const retried = await cli(['dead', 'retry', 'j1', '--redis', redisUrl(), '--prefix', prefix])
    expect(retried).toMatchObject({ code: 0, stdout: 'retried 1\n' })
    expect((await queue.getStatus('j1'))?.status).toBe('queued')
    expect((await cli(['dead', 'retry', 'j1', '--redis', redisUrl(), '--prefix', prefix])).code).toBe(1)
    const purged = await cli(['dead', 'purge', '--json', '--redis', redisUrl(), '--prefix', prefix])
    expect(JSON.parse(purged.stdout)).toEqual({ purged: 1 })
    expect(await redis.xlen(`${prefix}:dead`)).toBe(0)
  })

  test('dead list shows type and subject, in columns that line up with Korean subjects', async () => {
    const prefix = uniquePrefix('cli')
    const letter = (id: string, fields: object, error: string) =>
      redis.xadd(
        `${prefix}:dead`,
        '*',
        'id',
        id,
        'job',
        JSON.stringify({
          id,
          type: 'welcome',
          to: [{ address: 'kim@example.com' }],
          priority: 'normal',
          maxAttempts: 3,
          createdAt: 1,
          ...fields,
        }),
        'error',
        error,
        'attempts',
        '3',
        'time',
        String(Date.now()),
      )
    await letter('k1', { type: 'order', subject: '주문이 확인되었습니다', text: 'x' }, 'mailbox full')
    await letter('k2', { type: 'signup', subject: 'Welcome', text: 'x' }, 'rejected')
    await letter('k3', { type: 'receipt', template: 'receipt', data: {} }, 'timeout')
    await letter('k4', { subject: '가'.repeat(60), text: 'x' }, 'too long')
    const list = await cli(['dead', 'list', '--redis', redisUrl(), '--prefix', prefix])
    expect(list.code).toBe(0)
    const lines = list.stdout.trimEnd().split('\n')
    expect(lines).toHaveLength(6)
    expect(list.stdout).toMatch(/^k1\s+\S+\s+order\s+kim@example\.com\s+주문이 확인되었습니다\s+3\s+mailbox full$/m)
    expect(list.stdout).toMatch(/^k3\s+\S+\s+receipt\s+kim@example\.com\s+\(template receipt\)\s+3\s+timeout$/m)
    // A long subject is cut to 40 columns (20 syllables), with an ellipsis.
    expect(list.stdout).toContain(`${'가'.repeat(19)}…`)
    // The error column starts at one terminal column on every line, whatever the subject's script.
    const errorColumn = (line: string) => displayWidth(line.slice(0, line.lastIndexOf('  ') + 2))
    expect(new Set(lines.map(errorColumn)).size).toBe(1)
  })

  test('a mistyped command, subcommand or option gets a suggestion and exit code 2', async () => {
    const typo = await cli(['stauts', 'j1'])
    expect(typo.code).toBe(2)
    expect(typo.stderr).toContain("unknown command 'stauts'. Did you mean 'status'?")
    expect((await cli(['stat'])).stderr).toContain("Did you mean 'stats'?")
    const sub = await cli(['dead', 'lsit'])
    expect(sub.code).toBe(2)
    expect(sub.stderr).toContain("unknown command 'dead lsit'. Did you mean 'dead list'?")
    const option = await cli(['dead', 'list', '--cuont', '5'])
    expect(option.code).toBe(2)
    expect(option.stderr).toContain("unknown option '--cuont' for 'dead list'. Did you mean --count?")
    expect((await cli(['suppression', 'add', 'a@example.com', '--reasn', 'x'])).stderr).toContain(
      'Did you mean --reason?',
    )
    const far = await cli(['frobnicate'])
    expect(far.code).toBe(2)
    expect(far.stderr).not.toContain('Did you mean')
    expect(far.stderr).toContain('Commands:')
  })

  test("each command takes only its own options: another command's option is a usage error", async () => {
    const args = ['--redis', 'redis://127.0.0.1:1']
    // Refused before connecting: none of these reaches the (unreachable) Redis.
    const retry = await cli(['dead', 'retry', 'j1', '--count', '5', ...args])
    expect(retry.code).toBe(2)
    expect(retry.stderr).toContain(
      "unknown option '--count' for 'dead retry'. --count is an option of 'pending', 'dead list', 'suppression list', 'consent due'.",
    )
    expect(retry.stderr).toContain('Usage: mailstream dead retry <id> | --all')
    expect((await cli(['stats', '--all', ...args])).code).toBe(2)
    expect((await cli(['dead', 'list', '--before', '2026-01-01', ...args])).code).toBe(2)
    expect((await cli(['worker', '--config', 'x.mjs', '--json', ...args])).code).toBe(2)
    expect((await cli(['stats', 'extra', ...args])).stderr).toContain("unexpected argument 'extra' for 'stats'")
    expect((await cli(['pending', '--count', ...args])).code).toBe(2)
    // Its own and the global options pass, and then the unreachable Redis is exit code 1.
    expect((await cli(['dead', 'list', '--count', '5', '--json', '--prefix', 'p', ...args])).code).toBe(1)
  })

  test('--help and --version need no Redis, and the command line is read without loading the commands', async () => {
    const help = await cli(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/^ {2}dead list \[--count N\] +dead letters, newest first$/m)
    const one = await cli(['dead', 'list', '--help'])
    expect(one.stdout).toMatch(/^Usage: mailstream dead list \[--count N\]$/m)
    expect(one.stdout).toContain('--count N')
    expect(one.stdout).not.toContain('--before')
    expect((await cli(['help', 'suppression'])).stdout).toContain('Usage: mailstream suppression <command>')
    const version = await cli(['--version'])
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version)
    // What node loads before it runs anything: cli.js and the chunks it imports statically.
    const loaded = new Set<string>()
    const visit = (file: string) => {
      if (loaded.has(file)) return
      loaded.add(file)
      const code = readFileSync(join(dir, file), 'utf8')
      for (const [, next] of code.matchAll(/^import\s[^'"]*['"]\.\/([^'"]+)['"]/gm)) visit(next as string)
    }
    visit('cli.js')
    const code = [...loaded].map((file) => readFileSync(join(dir, file), 'utf8')).join('\n')
    expect(code).toContain('Did you mean')
    expect(code).not.toMatch(/from ['"](ioredis|zod|mustache|marked|juice)['"]/)
    expect(code).not.toContain('createEmailWorker')
  })

  test('suppression add, list and remove; a bad address is exit code 2 and writes nothing', async () => {
    const prefix = uniquePrefix('cli')
    const args = ['--redis', redisUrl(), '--prefix', prefix]
    expect((await cli(['suppression', 'add', 'Gone@Example.com', '--reason', 'bounce', ...args])).code).toBe(0)
    const list = await cli(['suppression', 'list', '--json', ...args])
    expect(JSON.parse(list.stdout)).toEqual([{ address: 'gone@example.com', reason: 'bounce', at: expect.any(Number) }])
    const bad = await cli(['suppression', 'add', 'not-an-address', ...args])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('address')
    expect(await redis.hlen(`${prefix}:suppressed`)).toBe(1)
    expect((await cli(['suppression', 'remove', 'gone@example.com', ...args])).code).toBe(0)
    expect((await cli(['suppression', 'remove', 'gone@example.com', ...args])).code).toBe(1)
  })

  test('batch shows counters and progress', async () => {
    const prefix = uniquePrefix('cli')
    await redis.hset(`${prefix}:batch:issue-3`, { total: 10, sent: 6, failed: 1, sealed: '1' })
    const shown = await cli(['batch', 'issue-3', '--redis', redisUrl(), '--prefix', prefix])
    expect(shown.stdout).toMatch(/^progress\s+7\/10 \(70%\)$/m)
    expect((await cli(['batch', 'none', '--redis', redisUrl(), '--prefix', prefix])).code).toBe(1)
  })

  test('batch shows an A/B test: each variant and the winner', async () => {
    const prefix = uniquePrefix('cli')
    const ab = { share: 0.2, metric: 'clicks', minSample: 100, decideAfterMs: 1, decideAt: 1, spec: '' }
    await redis.hset(`${prefix}:batch:issue-4`, {
      total: 400,
      ab: JSON.stringify({ ...ab, variants: [{ subject: 'Spring' }, { subject: 'Hello' }] }),
      'ab:v0:sent': 200,
      'ab:v0:clicked': 10,
      'ab:v1:sent': 200,
      'ab:v1:clicked': 30,
      'ab:decision': JSON.stringify({ winner: 1, reason: 'best-rate', at: 2, numbers: {} }),
    })
    const shown = await cli(['batch', 'issue-4', '--redis', redisUrl(), '--prefix', prefix])
    expect(shown.stdout).toMatch(/^variant 1\s+Hello: sent 200, opened 0%, clicked 15%$/m)
    expect(shown.stdout).toMatch(/^winner\s+variant 1 \(best-rate\)$/m)
  })

  test('bad usage is exit code 2; unreachable Redis is exit code 1 with a clear message', async () => {
    expect((await cli(['frobnicate'])).code).toBe(2)
    expect((await cli([])).code).toBe(2)
    expect((await cli(['dead'])).code).toBe(2)
    expect((await cli(['stats', '--redis', 'localhost:6379'])).code).toBe(2)
    const down = await cli(['stats', '--redis', 'redis://127.0.0.1:1'])
    expect(down.code).toBe(1)
    expect(down.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1: .*ECONNREFUSED/)
  })

  test('worker --config runs a worker as its own process and stops gracefully on SIGTERM', async () => {
    const prefix = uniquePrefix('cli')
    const sink = join(dir, `${prefix}.log`)
    const config = join(dir, `${prefix}.config.mjs`)
    writeFileSync(sink, '')
    writeFileSync(
      config,
      `import { appendFileSync } from 'node:fs'
export default {
  from: 'news@example.com',
  concurrency: 4,
  transport: {
    name: 'file',
    async send(message) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      appendFileSync(${JSON.stringify(sink)}, message.jobId + '\\n')
      return { messageId: message.jobId }
    },
  },
}
`,
    )
    const queue = createEmailQueue({ redis, prefix })
    const jobs = await queue.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ ...job, to: `r${i}@example.com` })))
    const child: ChildProcess = spawn(process.execPath, [
      bin,
      'worker',
      '--config',
      config,
      '--redis',
      redisUrl(),
      '--prefix',
      prefix,
    ])
    let output = ''
    child.stdout?.on('data', (chunk) => {
      output += chunk
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    await waitUntil(() => readFileSync(sink, 'utf8').split('\n').filter(Boolean).length === 20, 15_000, 'the sends')
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(output).toContain('worker stopped')
    expect(readFileSync(sink, 'utf8').split('\n').filter(Boolean).sort()).toEqual(jobs.map((j) => j.id).sort())
    for (const { id } of jobs) expect((await queue.getStatus(id))?.status).toBe('sent')
  })
})
