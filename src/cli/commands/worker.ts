import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { createEmailWorker, type EmailWorkerOptions } from '../../worker/index.js'
import type { Invocation } from '../context.js'
import { UsageError } from '../usage-error.js'
import { loadUserModule } from '../user-module.js'

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
  const config = await loadUserModule(path, 'config')
  if (typeof config !== 'object' || config === null) throw new UsageError(`${file} must export the worker options`)
  return config as WorkerConfig
}

/** `mailstream worker --config FILE`: a worker as its own process, until SIGTERM or SIGINT. */
export async function worker({ values, redisUrl, prefix, print }: Invocation): Promise<void> {
  if (typeof values.config !== 'string') throw new UsageError('worker needs --config FILE')
  const { shutdownTimeoutMs = 30_000, ...config } = await loadConfig(values.config)
  const running = createEmailWorker({ ...config, redis: config.redis ?? redisUrl, prefix: config.prefix ?? prefix })
  let sent = 0
  running.on('sent', () => sent++)
  running.on('dead', (event) => print(`dead ${event.id}: ${event.error}`))
  running.on('error', (error) => print(`error: ${error.message}`))
  running.on('paused', (event) => print(`paused: ${event.reason}`))
  running.on('resumed', () => print('resumed'))
  await running.start()
  print(`worker ${running.consumer} started on prefix ${config.prefix ?? prefix}`)
  const report = setInterval(() => {
    if (sent > 0) print(`sent ${sent} in the last minute, ${running.inFlight} in flight`)
    sent = 0
  }, 60_000)
  await new Promise<void>((resolveStop) => {
    const stop = (signal: string) => {
      print(`${signal}: finishing in-flight sends (up to ${shutdownTimeoutMs} ms)`)
      clearInterval(report)
      running.stop({ timeoutMs: shutdownTimeoutMs }).then(() => resolveStop())
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  await config.transport.close?.()
  print('worker stopped')
}
