import type { TestProject } from 'vitest/node'
import { findRedisServer, INSTALL_HINT, type RedisServer, startRedisServer } from '../helpers/redis-server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
    /** JSON list of `{ host, port }` when the run is against Redis Cluster; '' otherwise. */
    redisClusterNodes: string
  }
}

let server: RedisServer | undefined

/** One redis-server for the whole run, on a free port and without persistence; or REDIS_URL. */
export async function setup(project: TestProject): Promise<void> {
  project.provide('redisClusterNodes', '')
  if (process.env.REDIS_URL) {
    project.provide('redisUrl', process.env.REDIS_URL)
    return
  }
  if (!findRedisServer()) throw new Error(INSTALL_HINT)
  server = await startRedisServer()
  project.provide('redisUrl', server.url)
}

export async function teardown(): Promise<void> {
  if (!server) return
  await server.stop()
  server.cleanup()
}
