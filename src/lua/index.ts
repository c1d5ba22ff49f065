import { createHash } from 'node:crypto'
import type { ChainableCommander } from 'ioredis'
import { labelScript, type RedisClient } from '../redis.js'
import abClaim from './ab-claim.lua'
import abDecide from './ab-decide.lua'
import abHold from './ab-hold.lua'
import abTrim from './ab-trim.lua'
import activate from './activate.lua'
import cancel from './cancel.lua'
import enqueue from './enqueue.lua'
import fetch from './fetch.lua'
import finish from './finish.lua'
import gcra from './gcra.lua'
import keep from './keep.lua'
import batchLib from './lib/batch.lua'
import promote from './promote.lua'
import quota from './quota.lua'
import reclaim from './reclaim.lua'
import retryDead from './retry-dead.lua'
import sealBatch from './seal-batch.lua'
import sequenceClaim from './sequence-claim.lua'
import sequenceEnroll from './sequence-enroll.lua'
import sequenceMove from './sequence-move.lua'
import sesEvent from './ses-event.lua'
import slidingWindow from './sliding-window.lua'
import verifyAttempt from './verify-attempt.lua'
import verifyUse from './verify-use.lua'

/** Scripts that change batch counters start with the shared batch functions. */
const withBatchLib = (source: string) => `${batchLib}\n${source}`

const SOURCES = {
  abClaim,
  abDecide,
  abHold,
  abTrim,
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
  sequenceClaim,
  sequenceEnroll,
  sequenceMove,
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

/** The Lua source of a script as it is registered (with the batch functions where it uses them). */
export function scriptSource(name: ScriptName): string {
  return SOURCES[name]
}

/** Each script's SHA1, as EVALSHA names it; a bounded client names its calls `mailstream_<name>`. */
const SHAS = {} as Record<ScriptName, string>
for (const [name, lua] of Object.entries(SOURCES) as [ScriptName, string][]) {
  SHAS[name] = createHash('sha1').update(lua).digest('hex')
  labelScript(SHAS[name], commandName(name))
  labelScript(lua, commandName(name))
}

const isNoScript = (error: unknown) => error instanceof Error && error.message.startsWith('NOSCRIPT')

/**
 * Runs a script: EVALSHA, and EVAL once after a NOSCRIPT reply (after a SCRIPT FLUSH or a
 * restart), as ioredis's own script commands do. The command is sent as a plain EVALSHA, not
 * through the command `defineScripts` registers (pipelines still use that): ioredis's script
 * command copies every argument once more and wraps each call in two more promises, measured at
 * about 1 µs of client CPU per enqueued job with 50 callers. Only the typed wrappers beside the
 * scripts (`src/lua/<name>.ts`) call this: they are the one place that packs a script's KEYS/ARGV.
 */
export function runScript<T>(
  client: RedisClient,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): Promise<T> {
  return client.evalsha(SHAS[name], keys.length, ...keys, ...args).catch((error: unknown) => {
    if (!isNoScript(error)) throw error
    return client.eval(SOURCES[name], keys.length, ...keys, ...args)
  }) as Promise<T>
}

/** Adds a script call to a pipeline (its reply comes with the pipeline's `exec`). Wrappers only, as `runScript`. */
export function addScript(
  pipeline: ChainableCommander,
  name: ScriptName,
  keys: readonly string[],
  args: readonly (string | number)[],
): void {
  runner(pipeline, name).call(pipeline, keys.length, ...keys, ...args)
}
