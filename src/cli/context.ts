import type { Redis } from 'ioredis'
import type { QueueKeys } from '../keys.js'
import type { EmailQueue } from '../queue/types.js'
import { UsageError } from './usage-error.js'

/** The option values of one invocation, as node:util parseArgs gives them. */
export type Values = Record<string, string | boolean | undefined>

/** What every command gets: its arguments and options, and where to print. */
export interface Invocation {
  /** Positional arguments after the command's name (`dead retry <id>`: the id). */
  args: string[]
  values: Values
  redisUrl: string
  prefix: string
  print(text: string): void
}

/** What a command that reads or changes the queue gets: a connected queue as well. */
export interface Context extends Invocation {
  queue: EmailQueue
  redis: Redis
  keys: QueueKeys
  json: boolean
}

/** Runs one command; a thrown error becomes its message and exit code. */
export type Runner = (invocation: Invocation) => Promise<void>

/** Prints `data` as JSON under --json, else the text `text()` makes. */
export function out(context: Context, data: unknown, text: () => string): void {
  context.print(context.json ? JSON.stringify(data, null, 2) : text())
}

/** The --count option, 1-10000. */
export function count(value: string | boolean | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 10_000) throw new UsageError('--count must be 1-10000')
  return parsed
}
