// What the `mailstream` command accepts: commands, their options and usage. Each command's code is
// imported only when it runs, so that `--help`, `--version` and a usage mistake load none of it.
import type { Runner } from './context.js'

/** One option, as node:util parseArgs takes it, with what the usage says about it. */
export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  /** The value's placeholder in the usage (`N`, `URL`). */
  value?: string
  description: string
}

export const OPTIONS = {
  redis: { type: 'string', value: 'URL', description: 'Redis to use (default: $REDIS_URL or redis://127.0.0.1:6379)' },
  prefix: { type: 'string', value: 'P', description: 'queue prefix (default: $MAILSTREAM_PREFIX or email)' },
  json: { type: 'boolean', description: 'print JSON instead of tables' },
  count: { type: 'string', value: 'N', description: 'how many to show, 1-10000' },
  all: { type: 'boolean', description: 'every dead letter' },
  before: { type: 'string', value: 'DATE', description: 'only those older than DATE (ISO 8601 or epoch ms)' },
  reason: { type: 'string', value: 'TEXT', description: 'why the address is suppressed (default: manual)' },
  config: { type: 'string', value: 'FILE', description: 'worker options module: .js, .mjs or .ts (with tsx)' },
  store: {
    type: 'string',
    value: 'FILE',
    description: 'consent store module (.js, .mjs, .ts) exporting the app store, or a .json/.ndjson file of consents',
  },
  days: { type: 'string', value: 'N', description: 'consent due: what falls due within N days (default 30)' },
  help: { type: 'boolean', short: 'h', description: 'show the usage' },
  version: { type: 'boolean', description: "show mailstream's version" },
} satisfies Record<string, OptionSpec>

export type OptionName = keyof typeof OPTIONS

/** Options every command takes. */
export const GLOBAL_OPTIONS: OptionName[] = ['redis', 'prefix', 'help', 'version']

/** A command (or a subcommand, `dead list`) that runs. */
export interface CommandSpec {
  /** As typed: `stats`, `dead list`. */
  name: string
  /** Arguments and options shown after the name in the usage. */
  synopsis: string
  summary: string
  /** How many positional arguments it takes at most. */
  arguments: number
  /** Its options besides the global ones. */
  options: OptionName[]
  load(): Promise<Runner>
}

/** A command that only groups subcommands (`dead`, `suppression`). */
export interface GroupSpec {
  name: string
  subcommands: Record<string, CommandSpec>
}

function command(
  name: string,
  synopsis: string,
  summary: string,
  options: OptionName[],
  load: () => Promise<Runner>,
): CommandSpec {
  return { name, synopsis, summary, arguments: synopsis.includes('<') ? 1 : 0, options, load }
}

export const COMMANDS: Record<string, CommandSpec | GroupSpec> = {
  stats: command('stats', '', 'queue depths, pending, delayed, dead, totals', ['json'], async () => {
    return (await import('./commands/stats.js')).stats
  }),
  status: command('status', '<id>', "one job's status", ['json'], async () => {
    return (await import('./commands/status.js')).status
  }),
  pending: command(
    'pending',
    '[--count N]',
    'entries delivered to workers and not yet acknowledged',
    ['json', 'count'],
    async () => (await import('./commands/pending.js')).pending,
  ),
  dead: {
    name: 'dead',
    subcommands: {
      list: command('dead list', '[--count N]', 'dead letters, newest first', ['json', 'count'], async () => {
        return (await import('./commands/dead.js')).list
      }),
      retry: command(
        'dead retry',
        '<id> | --all',
        'send dead letters again with fresh attempts',
        ['json', 'all'],
        async () => (await import('./commands/dead.js')).retry,
      ),
      purge: command(
        'dead purge',
        '[--before DATE]',
        'delete dead letters (all, or older than DATE)',
        ['json', 'before'],
        async () => (await import('./commands/dead.js')).purge,
      ),
    },
  },
  batch: command('batch', '<id>', "a batch's counters and progress", ['json'], async () => {
    return (await import('./commands/batch.js')).batch
  }),
  suppression: {
    name: 'suppression',
    subcommands: {
      list: command('suppression list', '[--count N]', 'suppressed addresses', ['json', 'count'], async () => {
        return (await import('./commands/suppression.js')).list
      }),
      add: command(
        'suppression add',
        '<address> [--reason TEXT]',
        'suppress an address',
        ['json', 'reason'],
        async () => {
          return (await import('./commands/suppression.js')).add
        },
      ),
      remove: command('suppression remove', '<address>', 'stop suppressing an address', ['json'], async () => {
        return (await import('./commands/suppression.js')).remove
      }),
    },
  },
  consent: {
    name: 'consent',
    subcommands: {
      due: command(
        'consent due',
        '--store FILE [--days N]',
        'advertising-consent reminders due within N days (Korea, 제50조 제8항)',
        ['json', 'store', 'days', 'count'],
        async () => (await import('./commands/consent.js')).due,
      ),
      remind: command(
        'consent remind',
        '--store FILE',
        'enqueue the advertising-consent reminders due now (run daily)',
        ['json', 'store'],
        async () => (await import('./commands/consent.js')).remind,
      ),
    },
  },
  worker: command(
    'worker',
    '--config FILE',
    'run a worker as its own process',
    ['config'],
    async () => (await import('./commands/worker.js')).worker,
  ),
}

/** Every command that runs, subcommands included, in usage order. */
export function allCommands(): CommandSpec[] {
  return Object.values(COMMANDS).flatMap((spec) => ('subcommands' in spec ? Object.values(spec.subcommands) : [spec]))
}

function columns(rows: [string, string][], indent: string): string {
  const width = Math.max(...rows.map(([left]) => left.length))
  return rows.map(([left, right]) => `${indent}${left.padEnd(width)}  ${right}`.trimEnd()).join('\n')
}

function optionRows(names: OptionName[]): [string, string][] {
  return names.map((name) => {
    const option: OptionSpec = OPTIONS[name]
    const flag = `${option.short ? `-${option.short}, ` : ''}--${name}${option.value ? ` ${option.value}` : ''}`
    return [flag, option.description]
  })
}

const line = (spec: CommandSpec) => `${spec.name} ${spec.synopsis}`.trim()

/**
 * The usage of every command, or of the given ones (one command, or a group's subcommands),
 * with their options.
 */
export function usage(specs?: CommandSpec[], group?: string): string {
  const shown = specs ?? allCommands()
  const options = optionRows([...new Set([...shown.flatMap((spec) => spec.options), ...GLOBAL_OPTIONS])])
  const only = shown.length === 1 ? (shown[0] as CommandSpec) : undefined
  const head = only
    ? [`Usage: mailstream ${line(only)}`, '', only.summary]
    : [
        `Usage: mailstream ${group ? `${group} ` : ''}<command> [options]`,
        '',
        'Commands:',
        columns(
          shown.map((spec) => [line(spec), spec.summary]),
          '  ',
        ),
      ]
  const tail = specs ? [] : ['', "Run 'mailstream <command> --help' for one command's options."]
  return [...head, '', 'Options:', columns(options, '  '), ...tail].join('\n')
}

/** Two or three lines after a usage mistake: how the command is typed, and where its help is. */
export function briefUsage(specs: CommandSpec[], helpName: string): string {
  const lines = specs.map((spec) => `mailstream ${line(spec)}`)
  const head = lines.length === 1 ? [`Usage: ${lines[0]}`] : ['Usage:', ...lines.map((text) => `  ${text}`)]
  return [...head, `Run 'mailstream ${helpName} --help' for the options.`].join('\n')
}
