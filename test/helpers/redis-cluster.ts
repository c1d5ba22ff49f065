import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Cluster } from 'ioredis'
import { findRedisServer, freePort, INSTALL_HINT } from './redis-server.js'

export interface RedisClusterServer {
  nodes: { host: string; port: number }[]
  stop(): Promise<void>
}

/** Three masters on free loopback ports, no replicas, no persistence: the smallest real cluster. */
export async function startRedisCluster(masters = 3): Promise<RedisClusterServer> {
  const binary = findRedisServer()
  if (!binary) throw new Error(INSTALL_HINT)
  const dir = mkdtempSync(join(tmpdir(), 'mailstream-cluster-'))
  const ports: number[] = []
  while (ports.length < masters) {
    // The cluster bus listens on port + 10000: both must be free.
    const port = await freePort()
    if (port < 55_000 && !ports.includes(port)) ports.push(port)
  }
  const children: ChildProcess[] = []
  for (const port of ports) {
    const child = spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '2000',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        '--loglevel',
        'warning',
      ],
      { stdio: 'ignore' },
    )
    children.push(child)
  }
  const cli = binary.replace(/redis-server$/, 'redis-cli')
  const run = promisify(execFile)
  // Wait for every node to answer, then join them.
  for (const port of ports) {
    for (let tries = 0; ; tries++) {
      try {
        await run(cli, ['-p', String(port), 'ping'])
        break
      } catch (error) {
        if (tries > 100) throw error
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
  }
  await run(cli, [
    '--cluster',
    'create',
    ...ports.map((port) => `127.0.0.1:${port}`),
    '--cluster-replicas',
    '0',
    '--cluster-yes',
  ])
  const nodes = ports.map((port) => ({ host: '127.0.0.1', port }))
  // Ready once every slot is served and a client can write.
  const probe = new Cluster(nodes, { clusterRetryStrategy: () => 100 })
  probe.on('error', () => {})
  for (let tries = 0; ; tries++) {
    try {
      const info = await probe.cluster('INFO')
      if (String(info).includes('cluster_state:ok')) {
        await probe.set('{probe}:x', '1')
        break
      }
    } catch (error) {
      if (tries > 200) throw error
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  probe.disconnect()
  return {
    nodes,
    async stop() {
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null) return resolve()
              child.once('exit', () => resolve())
              child.kill('SIGTERM')
            }),
        ),
      )
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
