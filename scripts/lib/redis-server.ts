import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

export const INSTALL_HINT =
  'mailstream tests need a real redis-server (version 7 or later): install it with ' +
  '`sudo apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS), ' +
  'or point REDIS_URL at a Redis the tests may write to.'

export function findRedisServer(): string | undefined {
  for (const candidate of [
    process.env.REDIS_SERVER_BIN,
    'redis-server',
    '/usr/bin/redis-server',
    '/usr/local/bin/redis-server',
  ]) {
    if (!candidate) continue
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' })
      return candidate
    } catch {
      // try the next one
    }
  }
  return undefined
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      )
    })
  })
}

export interface RedisServer {
  port: number
  url: string
  /** Stops the server (SHUTDOWN, saving when persistence is on). */
  stop(): Promise<void>
  /** Kills the process with SIGKILL: no save, no goodbye. */
  kill(): Promise<void>
  /** Starts it again on the same port and data folder. */
  start(): Promise<void>
  /** Removes the data folder; the server must be stopped. */
  cleanup(): void
  /** The process id of the running server (undefined while it is stopped). */
  readonly pid: number | undefined
  /** Freezes the process with SIGSTOP: connections are accepted and commands are never answered. */
  pause(): void
  /** Lets a paused process run again (SIGCONT); harmless when it is not paused. */
  resume(): void
}

export interface RedisServerOptions {
  port?: number
  /** appendonly yes + appendfsync always: every write survives a crash. */
  persistence?: boolean
}

async function waitForPing(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const probe = new Redis({
      port,
      host: '127.0.0.1',
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    probe.on('error', () => {})
    try {
      await probe.connect()
      if ((await probe.ping()) === 'PONG') {
        // An AOF is loaded before PING answers LOADING-free.
        probe.disconnect()
        return
      }
    } catch {
      // not up yet
    }
    probe.disconnect()
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const binary = findRedisServer()
  if (!binary) throw new Error(INSTALL_HINT)
  const port = options.port ?? (await freePort())
  const dir = mkdtempSync(join(tmpdir(), 'mailstream-redis-'))
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
  ]
  if (options.persistence) args.push('--appendonly', 'yes', '--appendfsync', 'always')
  else args.push('--appendonly', 'no')
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    child = spawn(binary as string, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    let stderr = ''
    child.stderr?.on('data', (chunk) => {
      stderr += chunk
    })
    const exited = new Promise<never>((_, reject) =>
      child?.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${stderr}`))),
    )
    await Promise.race([waitForPing(port, 10_000), exited])
  }

  function waitExit(process_: ChildProcess | undefined): Promise<void> {
    if (!process_ || process_.exitCode !== null || process_.signalCode !== null) return Promise.resolve()
    return new Promise((resolve) => process_.once('exit', () => resolve()))
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    async stop() {
      const current = child
      // A paused server would never answer SHUTDOWN.
      if (current && current.exitCode === null && current.signalCode === null) current.kill('SIGCONT')
      const admin = new Redis({
        port,
        host: '127.0.0.1',
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      })
      admin.on('error', () => {})
      try {
        await (options.persistence ? admin.shutdown('SAVE') : admin.shutdown('NOSAVE'))
      } catch {
        // SHUTDOWN closes the connection: an error here is the expected goodbye.
      }
      admin.disconnect()
      await waitExit(current)
    },
    async kill() {
      const current = child
      current?.kill('SIGKILL')
      await waitExit(current)
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true })
    },
    get pid() {
      return child && child.exitCode === null && child.signalCode === null ? child.pid : undefined
    },
    pause() {
      child?.kill('SIGSTOP')
    },
    resume() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGCONT')
    },
  }
}
