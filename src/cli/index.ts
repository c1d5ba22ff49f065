import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { MailstreamError } from '../errors.js'
import { GROUP, type QueueKeys } from '../keys.js'
import { createEmailQueue, type EmailQueue } from '../queue/index.js'
import { queueInternals } from '../queue/internals.js'
import { createEmailWorker, type EmailWorkerOptions } from '../worker/index.js'
import { formatDuration, formatTime, pairs, table } from './format.js'

const USAGE = `Usage: mailstream <command> [options]

Commands:
  stats                           queue depths, pending, delayed, dead, totals
  status <id>                     one job's status
  pending [--count N]             entries delivered to workers and not yet acknowledged
  dead list [--count N]           dead letters, newest first
  dead retry <id> | --all         send dead letters again with fresh attempts
  dead purge [--before DATE]      delete dead letters (all, or older than DATE)
  batch <id>                      a batch's counters and progress
  suppression list [--count N]    suppressed addresses
  suppression add <address> [--reason TEXT]
  suppression remove <address>
  worker --config FILE            run a worker as its own process (FILE: .js, .mjs or .ts)

Options:
  --redis URL     Redis to use (default: $REDIS_URL or redis://127.0.0.1:6379)
  --prefix P      queue prefix (default: $MAILSTREAM_PREFIX or email)
  --json          print JSON instead of tables
  --help, --version`

/** A usage mistake: printed with the usage text, exit code 2. */
class UsageError extends Error {}

interface Context {
  queue: EmailQueue
  redis: Redis
  keys: QueueKeys
  json: boolean
  values: Record<string, string | boolean | undefined>
  args: string[]
  print(text: string): void
}

function out(context: Context, data: unknown, text: () => string): void {
  context.print(context.json ? JSON.stringify(data, null, 2) : text())
}

function count(value: string | boolean | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 10_000) throw new UsageError('--count must be 1-10000')
  return parsed
}

const commands: Record<string, (context: Context) => Promise<void>> = {
  async stats(context) {
    const stats = await context.queue.stats()
    out(context, stats, () => {
      const rows = Object.entries(stats.streams).map(([priority, stream]) => [
        priority,
        stream.waiting,
        stream.pending,
        stream.consumers,
        stream.oldestWaitingMs ? formatDuration(stream.oldestWaitingMs) : '-',
      ])
      const percent = (rate: number) => `${(rate * 100).toFixed(2)}%`
      return [
        table(['stream', 'waiting', 'pending', 'consumers', 'oldest'], rows),
        '',
        pairs([
          ['delayed', stats.delayed],
          ['dead', stats.dead],
          ['suppressed', stats.suppressed],
          ['sent', stats.totals.sent],
          ['failed', stats.totals.failed],
          ['retried', stats.totals.retried],
          ['delivered', `${stats.totals.delivered} (${percent(stats.rates.deliveryRate)})`],
          ['bounced', `${stats.totals.bounced} (${percent(stats.rates.bounceRate)})`],
          ['complained', `${stats.totals.complained} (${percent(stats.rates.complaintRate)})`],
          ['opened', `${stats.totals.opened} (${percent(stats.rates.openRate)})`],
          ['clicked', `${stats.totals.clicked} (${percent(stats.rates.clickRate)})`],
        ]),
      ].join('\n')
    })
  },

  async status(context) {
    const [id] = context.args
    if (!id) throw new UsageError('status needs a job id')
    const state = await context.queue.getStatus(id)
    if (!state) throw new MailstreamError('E_NOT_FOUND', `no job ${id} (unknown, or finished more than a day ago)`)
    out(context, state, () =>
      pairs([
        ['id', state.id],
        ['status', state.status],
        ['type', state.type],
        ['priority', state.priority],
        ['attempts', `${state.attempts} of ${state.maxAttempts}`],
        ['batch', state.batchId],
        ['messageId', state.messageId],
        ['error', state.error],
        ['created', formatTime(state.createdAt)],
        ['updated', formatTime(state.updatedAt)],
        ['sent', formatTime(state.sentAt)],
        ['due', formatTime(state.dueAt)],
      ]),
    )
  },

  async pending(context) {
    const limit = count(context.values.count, 50)
    const rows: { priority: string; entryId: string; consumer: string; idleMs: number; deliveries: number }[] = []
    for (const [index, stream] of context.keys.streams.entries()) {
      const entries = (await context.redis.xpending(stream, GROUP, '-', '+', limit).catch(() => [])) as [
        string,
        string,
        number,
        number,
      ][]
      for (const [entryId, consumer, idleMs, deliveries] of entries) {
        rows.push({ priority: ['high', 'normal', 'low'][index] as string, entryId, consumer, idleMs, deliveries })
      }
    }
    out(context, rows, () =>
      rows.length === 0
        ? 'nothing pending'
        : table(
            ['priority', 'entry', 'consumer', 'idle', 'deliveries'],
            rows.map((row) => [row.priority, row.entryId, row.consumer, formatDuration(row.idleMs), row.deliveries]),
          ),
    )
  },

  async dead(context) {
    const [action, target] = context.args
    if (action === 'list') {
      const letters = await context.queue.deadLetters.list({ count: count(context.values.count, 50) })
      out(context, letters, () =>
        letters.length === 0
          ? 'no dead letters'
          : table(
              ['id', 'failed', 'attempts', 'to', 'error'],
              letters.map((letter) => [
                letter.id,
                formatTime(letter.failedAt),
                letter.attempts,
                letter.job?.to.map((address) => address.address).join(', '),
                letter.error.slice(0, 80),
              ]),
            ),
      )
    } else if (action === 'retry') {
      if (!target && context.values.all !== true) throw new UsageError('dead retry needs a job id or --all')
      const moved = await context.queue.deadLetters.retry(
        context.values.all === true ? { all: true } : (target as string),
      )
      if (moved === 0 && context.values.all !== true)
        throw new MailstreamError('E_NOT_FOUND', `no dead letter for ${target}`)
      out(context, { retried: moved }, () => `retried ${moved}`)
    } else if (action === 'purge') {
      const before = context.values.before
      let cutoff: number | undefined
      if (typeof before === 'string') {
        cutoff = /^\d+$/.test(before) ? Number(before) : Date.parse(before)
        if (Number.isNaN(cutoff)) throw new UsageError('--before must be a date (2026-11-01T00:00:00Z) or epoch ms')
      }
      const purged = await context.queue.deadLetters.purge(cutoff === undefined ? {} : { before: cutoff })
      out(context, { purged }, () => `purged ${purged}`)
    } else {
      throw new UsageError('dead needs list, retry or purge')
    }
  },

  async batch(context) {
    const [batchId] = context.args
    if (!batchId) throw new UsageError('batch needs a batch id')
    const hash = await context.redis.hgetall(context.keys.batch(batchId))
    if (!hash.total) throw new MailstreamError('E_NOT_FOUND', `no batch ${batchId}`)
    const number = (field: string) => Number(hash[field] ?? 0)
    const completed = number('sent') + number('failed') + number('suppressed') + number('cancelled')
    const total = number('total')
    const batch = {
      batchId,
      total,
      completed,
      percentage: total ? Math.floor((completed * 10_000) / total) / 100 : 0,
      sent: number('sent'),
      failed: number('failed'),
      suppressed: number('suppressed'),
      cancelled: number('cancelled'),
      sealed: hash.sealed === '1',
      finishedAt: hash.finishedAt ? Number(hash.finishedAt) : undefined,
    }
    out(context, batch, () =>
      pairs([
        ['batch', batchId],
        ['progress', `${completed}/${total} (${batch.percentage}%)`],
        ['sent', batch.sent],
        ['failed', batch.failed],
        ['suppressed', batch.suppressed],
        ['cancelled', batch.cancelled],
        ['all enqueued', batch.sealed ? 'yes' : 'no'],
        ['finished', formatTime(batch.finishedAt)],
      ]),
    )
  },

  async suppression(context) {
    const [action, address] = context.args
    if (action === 'list') {
      const limit = count(context.values.count, 100)
      const items = []
      let cursor = '0'
      do {
        const page = await context.queue.suppression.list({ cursor, count: Math.min(limit, 1000) })
        items.push(...page.items)
        cursor = page.cursor
      } while (cursor !== '0' && items.length < limit)
      const shown = items.slice(0, limit)
      out(context, shown, () =>
        shown.length === 0
          ? 'no suppressed addresses'
          : table(
              ['address', 'reason', 'since'],
              shown.map((item) => [item.address, item.reason, formatTime(item.at)]),
            ),
      )
    } else if (action === 'add') {
      if (!address) throw new UsageError('suppression add needs an address')
      const reason = typeof context.values.reason === 'string' ? context.values.reason : 'manual'
      await context.queue.suppression.add(address, reason)
      out(context, { added: address.toLowerCase() }, () => `suppressed ${address.toLowerCase()}`)
    } else if (action === 'remove') {
      if (!address) throw new UsageError('suppression remove needs an address')
      const removed = await context.queue.suppression.remove(address)
      if (!removed) throw new MailstreamError('E_NOT_FOUND', `${address} is not suppressed`)
      out(context, { removed: address.toLowerCase() }, () => `removed ${address.toLowerCase()}`)
    } else {
      throw new UsageError('suppression needs list, add or remove')
    }
  },
}

/** The worker options a config file exports (default export, or a function returning them). */
export type WorkerConfig = Omit<EmailWorkerOptions, 'redis' | 'prefix'> &
  Partial<Pick<EmailWorkerOptions, 'redis' | 'prefix'>> & {
    /** How long SIGTERM waits for in-flight sends. Default 30 000. */
    shutdownTimeoutMs?: number
  }

async function loadConfig(file: string): Promise<WorkerConfig> {
  const path = resolve(file)
  try {
    readFileSync(path)
  } catch {
    throw new UsageError(`config file not found: ${file}`)
  }
  if (/\.[cm]?ts$/.test(path)) {
    try {
      const tsx = (await import('tsx/esm/api' as string)) as { register(): unknown }
      tsx.register()
    } catch {
      throw new UsageError('a .ts config needs tsx installed (npm install -D tsx), or use a .js config')
    }
  }
  const module = (await import(pathToFileURL(path).href)) as { default?: unknown }
  const exported = module.default ?? module
  const config = typeof exported === 'function' ? await (exported as () => unknown)() : exported
  if (typeof config !== 'object' || config === null) throw new UsageError(`${file} must export the worker options`)
  return config as WorkerConfig
}

async function runWorker(values: Context['values'], redisUrl: string, prefix: string, print: (text: string) => void) {
  if (typeof values.config !== 'string') throw new UsageError('worker needs --config FILE')
  const { shutdownTimeoutMs = 30_000, ...config } = await loadConfig(values.config)
  const worker = createEmailWorker({ ...config, redis: config.redis ?? redisUrl, prefix: config.prefix ?? prefix })
  let sent = 0
  worker.on('sent', () => sent++)
  worker.on('dead', (event) => print(`dead ${event.id}: ${event.error}`))
  worker.on('error', (error) => print(`error: ${error.message}`))
  worker.on('paused', (event) => print(`paused: ${event.reason}`))
  worker.on('resumed', () => print('resumed'))
  await worker.start()
  print(`worker ${worker.consumer} started on prefix ${config.prefix ?? prefix}`)
  const report = setInterval(() => {
    if (sent > 0) print(`sent ${sent} in the last minute, ${worker.inFlight} in flight`)
    sent = 0
  }, 60_000)
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      print(`${signal}: finishing in-flight sends (up to ${shutdownTimeoutMs} ms)`)
      clearInterval(report)
      worker.stop({ timeoutMs: shutdownTimeoutMs }).then(() => resolveStop())
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  await config.transport.close?.()
  print('worker stopped')
}

export async function main(argv: string[], print = (text: string) => console.log(text)): Promise<number> {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        redis: { type: 'string' },
        prefix: { type: 'string' },
        json: { type: 'boolean' },
        count: { type: 'string' },
        all: { type: 'boolean' },
        before: { type: 'string' },
        reason: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    })
  } catch (error) {
    console.error(`mailstream: ${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  const { positionals } = parsed
  const values = parsed.values as Context['values']
  if (values.version) {
    print((createRequire(import.meta.url)('mailstream/package.json') as { version: string }).version)
    return 0
  }
  const [command, ...args] = positionals
  if (values.help || !command) {
    print(USAGE)
    return values.help ? 0 : 2
  }
  const redisUrl = (values.redis as string | undefined) ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
  const prefix = (values.prefix as string | undefined) ?? process.env.MAILSTREAM_PREFIX ?? 'email'
  if (!/^rediss?:\/\//.test(redisUrl)) {
    console.error(`mailstream: --redis must be a redis:// or rediss:// URL, not ${redisUrl}`)
    return 2
  }
  if (command === 'worker') {
    try {
      await runWorker(values, redisUrl, prefix, print)
      return 0
    } catch (error) {
      return report(error)
    }
  }
  const handler = commands[command]
  if (!handler) {
    console.error(`mailstream: unknown command '${command}'\n\n${USAGE}`)
    return 2
  }
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    retryStrategy: () => null,
  })
  let connectionError: Error | undefined
  redis.on('error', (error: Error) => {
    connectionError = error
  })
  try {
    try {
      await redis.connect()
    } catch (error) {
      console.error(`mailstream: cannot reach Redis at ${redisUrl}: ${(connectionError ?? (error as Error)).message}`)
      return 1
    }
    const queue = createEmailQueue({ redis, prefix })
    await handler({ queue, redis, keys: queueInternals(queue).keys, json: values.json === true, values, args, print })
    return 0
  } catch (error) {
    return report(error)
  } finally {
    redis.disconnect()
  }
}

function report(error: unknown): number {
  if (error instanceof UsageError) {
    console.error(`mailstream: ${error.message}\n\n${USAGE}`)
    return 2
  }
  if (error instanceof MailstreamError) {
    console.error(error.message)
    return error.code === 'E_VALIDATION' || error.code === 'E_CONFIG' ? 2 : 1
  }
  console.error(`mailstream: ${(error as Error)?.message ?? String(error)}`)
  return 1
}
