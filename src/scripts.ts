import type { ChainableCommander } from 'ioredis'
import activate from './lua/activate.lua'
import cancel from './lua/cancel.lua'
import enqueue from './lua/enqueue.lua'
import fetch from './lua/fetch.lua'
import finish from './lua/finish.lua'
import gcra from './lua/gcra.lua'
import keep from './lua/keep.lua'
import batchLib from './lua/lib/batch.lua'
import promote from './lua/promote.lua'
import quota from './lua/quota.lua'
import reclaim from './lua/reclaim.lua'
import retryDead from './lua/retry-dead.lua'
import sealBatch from './lua/seal-batch.lua'
import sesEvent from './lua/ses-event.lua'
import slidingWindow from './lua/sliding-window.lua'
import verifyAttempt from './lua/verify-attempt.lua'
import verifyUse from './lua/verify-use.lua'
import type { RedisClient } from './redis.js'

/** Scripts that change batch counters start with the shared batch functions. */
const withBatchLib = (source: string) => `${batchLib}\n${source}`

const SOURCES = {
  activate,
  cancel: withBatchLib(cancel),
  enqueue,
  fetch,
  finish: withBatchLib(finish),
  keep,
  promote,
  reclaim,
  retryDead: withBatchLib(retryDead),
  sealBatch: withBatchLib(sealBatch),
  sesEvent,
  gcra,
  quota,
  slidingWindow,
  verifyAttempt,
  verifyUse,
}
export type ScriptName = keyof typeof SOURCES

const commandName = (name: ScriptName) => `mailstream_${name}`
type Runner = (numberOfKeys: number, ...keysAndArgs: (string | number)[]) => Promise<unknown>

/**
 * Registers the Lua scripts on a client with `defineCommand` (EVALSHA, falling back to EVAL
 * after a SCRIPT FLUSH or a restart). Safe to call more than once on the same client.
 */
export function defineScripts(client: RedisClient): void {
  for (const [name, lua] of Object.entries(SOURCES) as [ScriptName, string][]) {
    const command = commandName(name)
    if (typeof (client as unknown as Record<string, unknown>)[command] !== 'function') {
      client.defineCommand(command, { lua })
    }
  }
}

function runner(target: RedisClient | ChainableCommander, name: ScriptName): Runner {
  const run = (target as unknown as Record<string, Runner>)[commandName(name)]
  if (!run) throw new Error(`[mailstream] script ${name} is not defined on this client`)
  return run
}

/** Runs a script defined by `defineScripts`. */
export function runScript<T>(
  client: RedisClient,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<T> {
  return runner(client, name).call(client, keys.length, ...keys, ...args) as Promise<T>
}

/** Adds a script call to a pipeline (its reply comes with the pipeline's `exec`). */
export function addScript(
  pipeline: ChainableCommander,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): void {
  runner(pipeline, name).call(pipeline, keys.length, ...keys, ...args)
}
