/**
 * What both server.ts files do: print the configuration warnings, start a redis-server when
 * REDIS_URL is unset (as `npm run demo` does), start the app, and shut it down on SIGTERM/SIGINT.
 */
import { type RedisServer, startRedisServer } from '../../scripts/lib/redis-server.js'
import type { Config } from './config.js'
import { type AppOverrides, consoleLog, type ExampleApp } from './host.js'

export async function runServer(
  config: Config,
  createApp: (config: Config, overrides: AppOverrides) => Promise<ExampleApp>,
): Promise<void> {
  const log = consoleLog
  for (const warning of config.warnings) log(`warning: ${warning}`)

  let embedded: RedisServer | undefined
  async function stopEmbeddedRedis() {
    if (!embedded) return
    await embedded.stop()
    embedded.cleanup()
    log('redis: embedded redis-server stopped')
  }

  let app: ExampleApp | undefined
  try {
    if (!config.redisUrl) {
      embedded = await startRedisServer()
      config.redisUrl = embedded.url
      log(`redis: REDIS_URL is not set, started redis-server on ${embedded.url} (it stops with the app)`)
    }
    app = await createApp(config, { log })
    await app.listen(config.port)
  } catch (error) {
    log(`start failed: ${(error as Error).stack ?? error}`)
    await app?.stop({ timeoutMs: 1000 }).catch(() => {})
    await stopEmbeddedRedis().catch(() => {})
    process.exit(1)
  }

  let signals = 0
  async function shutdown(signal: NodeJS.Signals) {
    if (++signals > 1) {
      log(`shutdown: ${signal} again, exiting without waiting`)
      process.exit(1)
    }
    log(`shutdown: ${signal} received`)
    try {
      await app?.stop({ timeoutMs: 10_000 })
      await stopEmbeddedRedis()
      log('shutdown: done')
    } catch (error) {
      log(`shutdown failed: ${(error as Error).stack ?? error}`)
      process.exitCode = 1
    }
  }
  process.on('SIGTERM', shutdown)
  process.on('SIGINT', shutdown)
}
