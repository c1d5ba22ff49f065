// The `mailstream` command: reads the command line, then loads and runs one command. Nothing here
// imports ioredis or the library's queue and worker: `--help` and a mistyped command stay fast.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'
import { MailstreamError } from '../errors.js'
import type { Values } from './context.js'
import {
  allCommands,
  briefUsage,
  COMMANDS,
  type CommandSpec,
  GLOBAL_OPTIONS,
  OPTIONS,
  type OptionName,
  usage,
} from './spec.js'
import { closest } from './suggest.js'
import { UsageError } from './usage-error.js'

export type { WorkerConfig } from './commands/worker.js'

type Token = Extract<NonNullable<ReturnType<typeof parseArgs>['tokens']>[number], { kind: 'option' }>

/** A usage mistake found while reading the command line, with the usage to show after it. */
class CommandLineError extends UsageError {
  constructor(
    message: string,
    readonly help: string,
  ) {
    super(message)
  }
}

const HINT = "Run 'mailstream --help' for the commands."

function parseOptions(names: readonly OptionName[]) {
  return Object.fromEntries(
    names.map((name) => {
      const { type, short } = OPTIONS[name] as { type: 'string' | 'boolean'; short?: string }
      return [name, short ? { type, short } : { type }]
    }),
  )
}

function didYouMean(input: string, candidates: Iterable<string>, shown = (name: string) => `'${name}'`): string {
  const match = closest(input, candidates)
  return match ? ` Did you mean ${shown(match)}?` : ''
}

/** The command that `positionals` name, and its arguments; a usage error with a suggestion if none. */
function resolveCommand(positionals: string[], options: Token[]): { spec: CommandSpec; args: string[] } {
  const [name = '', subname, ...rest] = positionals
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!entry) {
    // `--cuont 5 stats` reads 5 as the command: the option is the mistake to report.
    const unknown = options.find((token) => !Object.hasOwn(OPTIONS, token.name))
    if (unknown) throw unknownOption(unknown, Object.keys(OPTIONS) as OptionName[], undefined)
    const suggestion = didYouMean(name, Object.keys(COMMANDS))
    throw new CommandLineError(`unknown command '${name}'.${suggestion}`, suggestion ? HINT : usage())
  }
  if (!('subcommands' in entry)) return { spec: entry, args: subname === undefined ? [] : [subname, ...rest] }
  const group = Object.values(entry.subcommands)
  const choices = Object.keys(entry.subcommands)
  if (subname === undefined) {
    throw new CommandLineError(
      `${name} needs ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}`,
      briefUsage(group, name),
    )
  }
  const spec = Object.hasOwn(entry.subcommands, subname) ? entry.subcommands[subname] : undefined
  if (!spec) {
    const suggestion = didYouMean(subname, choices, (choice) => `'${name} ${choice}'`)
    throw new CommandLineError(`unknown command '${name} ${subname}'.${suggestion}`, briefUsage(group, name))
  }
  return { spec, args: rest }
}

function unknownOption(token: Token, allowed: OptionName[], spec: CommandSpec | undefined): CommandLineError {
  const where = spec ? ` for '${spec.name}'` : ''
  let hint = didYouMean(token.rawName.replace(/^-+/, ''), allowed, (name) => `--${name}`)
  if (!hint && spec && Object.hasOwn(OPTIONS, token.name)) {
    const takers = allCommands().filter((other) => other.options.includes(token.name as OptionName))
    hint = ` ${token.rawName} is an option of ${takers.map((other) => `'${other.name}'`).join(', ')}.`
  }
  return new CommandLineError(
    `unknown option '${token.rawName}'${where}.${hint}`,
    spec ? briefUsage([spec], spec.name) : HINT,
  )
}

/** A lenient first reading: options that take a value consume it, whichever command they belong to. */
function readLoosely(argv: string[]) {
  return parseArgs({
    args: argv,
    options: parseOptions(Object.keys(OPTIONS) as OptionName[]),
    strict: false,
    allowPositionals: true,
    tokens: true,
  })
}

/** Reads `argv` into a command, its arguments and its option values; throws CommandLineError. */
function read(
  argv: string[],
  loose: ReturnType<typeof readLoosely>,
): { spec: CommandSpec; args: string[]; values: Values } {
  const options = loose.tokens.filter((token): token is Token => token.kind === 'option')
  const { spec, args } = resolveCommand(loose.positionals, options)
  const allowed = [...spec.options, ...GLOBAL_OPTIONS]
  const stray = options.find((token) => !allowed.includes(token.name as OptionName))
  if (stray) throw unknownOption(stray, allowed, spec)
  if (args.length > spec.arguments) {
    throw new CommandLineError(
      `unexpected argument '${args[spec.arguments]}' for '${spec.name}'`,
      briefUsage([spec], spec.name),
    )
  }
  try {
    const strict = parseArgs({ args: argv, options: parseOptions(allowed), strict: true, allowPositionals: true })
    return { spec, args, values: strict.values as Values }
  } catch (error) {
    throw new CommandLineError((error as Error).message, briefUsage([spec], spec.name))
  }
}

/** What `mailstream help [command]` and `--help` print: one command's usage, a group's, or all. */
function helpFor(positionals: string[]): string {
  const [name = '', subname] = positionals
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
  if (!entry) return usage()
  if (!('subcommands' in entry)) return usage([entry])
  const sub =
    subname !== undefined && Object.hasOwn(entry.subcommands, subname) ? entry.subcommands[subname] : undefined
  return sub ? usage([sub]) : usage(Object.values(entry.subcommands), entry.name)
}

/**
 * Runs the command line `argv` (without `node` and the script) and resolves to the exit code:
 * 0 done, 1 failed (not found, Redis unreachable), 2 a usage mistake or invalid input.
 */
export async function main(argv: string[], print = (text: string) => console.log(text)): Promise<number> {
  const loose = readLoosely(argv)
  if (loose.values.version === true) {
    print((createRequire(import.meta.url)('mailstream/package.json') as { version: string }).version)
    return 0
  }
  if (loose.values.help === true || loose.positionals[0] === 'help') {
    print(helpFor(loose.positionals[0] === 'help' ? loose.positionals.slice(1) : loose.positionals))
    return 0
  }
  if (loose.positionals.length === 0) {
    print(usage())
    return 2
  }
  try {
    const { spec, args, values } = read(argv, loose)
    const redisUrl = (values.redis as string | undefined) ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
    const prefix = (values.prefix as string | undefined) ?? process.env.MAILSTREAM_PREFIX ?? 'email'
    if (!/^rediss?:\/\//.test(redisUrl)) {
      throw new CommandLineError(`--redis must be a redis:// or rediss:// URL, not ${redisUrl}`, HINT)
    }
    try {
      const run = await spec.load()
      await run({ args, values, redisUrl, prefix, print })
      return 0
    } catch (error) {
      return report(error, spec)
    }
  } catch (error) {
    return report(error, undefined)
  }
}

function report(error: unknown, spec: CommandSpec | undefined): number {
  if (error instanceof UsageError) {
    const help = error instanceof CommandLineError ? error.help : spec ? briefUsage([spec], spec.name) : HINT
    console.error(`mailstream: ${error.message}\n\n${help}`)
    return 2
  }
  if (error instanceof MailstreamError) {
    console.error(error.message)
    return error.code === 'E_VALIDATION' || error.code === 'E_CONFIG' ? 2 : 1
  }
  console.error(`mailstream: ${(error as Error)?.message ?? String(error)}`)
  return 1
}
