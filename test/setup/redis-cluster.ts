import type { TestProject } from 'vitest/node'
import { type RedisClusterServer, startRedisCluster } from '../helpers/redis-cluster.js'

let cluster: RedisClusterServer | undefined

/** A 3-master Redis Cluster on free loopback ports, for running the core suite once more. */
export async function setup(project: TestProject): Promise<void> {
  cluster = await startRedisCluster()
  project.provide('redisUrl', `redis://127.0.0.1:${cluster.nodes[0]?.port}`)
  project.provide('redisClusterNodes', JSON.stringify(cluster.nodes))
}

export async function teardown(): Promise<void> {
  await cluster?.stop()
}
