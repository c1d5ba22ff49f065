// Sequence definitions: the step builders, their checks, and the flat program a runner follows.
import { MailstreamError } from '../errors.js'
import { type EmailJobInput, showValue, TEMPLATE_NAME_RE } from '../job.js'

/** A sequence id, step id or event name: 1-40 characters of A-Z a-z 0-9 _ - (they go into job ids and tags). */
export const NAME_RE = /^[A-Za-z0-9_-]{1,40}$/
const MAX_DURATION_MS = 366 * 86_400_000
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/

/** `'3d'`, `'12h'`, `'30m'`, `'45s'`, `'500ms'`, `'2w'`, or a number of ms. */
export type Duration = string | number

/** What a step's `job` function and a `branch` condition see of an enrolment. */
export interface StepContext {
  sequenceId: string
  address: string
  name?: string
  locale?: string
  timeZone?: string
  /** The data given to `enroll` (each send step's `data` is merged over it for that email). */
  data: Record<string, unknown>
  /** Epoch ms. */
  enrolledAt: number
  /** The events signalled for this address while enrolled, by name: epoch ms of the first. */
  events: Record<string, number>
  /** The runner's clock, epoch ms. */
  now: number
}

export interface SendOptions {
  /** Stable id of the step (see docs/sequences.md, "Changing a sequence"). Default: the template name. */
  id?: string
  /** Template data for this email, over the enrolment's data. */
  data?: Record<string, unknown>
  /** The job's `type`. Default `sequence`. */
  type?: string
  /**
   * More job fields (subject, html, text, tags, advertising...), from the enrolment. The id and
   * recipient are the sequence's own. Default: none.
   */
  job?: (context: StepContext) => Partial<EmailJobInput>
}

export interface DelayOptions {
  /** Default `delay-<n>` (n counts the delays of the sequence from 1). */
  id?: string
  /** Hold the end of the delay to the next open time of the sequences' `calendar`. Default true. */
  calendar?: boolean
}

export interface WaitForOptions {
  /** Default `wait-<event>`. */
  id?: string
  /** How long to wait for the event. */
  timeout: Duration
  /** What happens when the event has not come within `timeout`: go on with the next step, or end. Default `continue`. */
  onTimeout?: 'continue' | 'exit'
}

export interface BranchOptions {
  /** Default `branch-<n>`. */
  id?: string
}

export type SequenceStep =
  | { kind: 'send'; template: string | undefined; options: SendOptions }
  | { kind: 'delay'; ms: number; options: DelayOptions }
  | { kind: 'waitFor'; event: string; timeoutMs: number; onTimeout: 'continue' | 'exit'; id: string | undefined }
  | {
      kind: 'branch'
      condition: (context: StepContext) => boolean
      whenTrue: readonly SequenceStep[]
      whenFalse: readonly SequenceStep[]
      options: BranchOptions
    }

export interface SequenceDefinitionInput {
  /** 1-40 characters of A-Z a-z 0-9 _ -. */
  id: string
  /** Raise it when the steps change; each enrolment records the version it last ran under. Default 1. */
  version?: number
  steps: readonly SequenceStep[]
  /** Events (signalled with `signal`) that end an enrolment as reached its goal. Default: none. */
  goals?: readonly string[]
}

/** One node of the flat program: `next` is the id of the node that follows ('' for the end). */
export type ProgramNode =
  | { kind: 'send'; id: string; index: number; next: string; template: string | undefined; options: SendOptions }
  | { kind: 'delay'; id: string; index: number; next: string; ms: number; calendar: boolean }
  | { kind: 'waitFor'; id: string; index: number; next: string; event: string; timeoutMs: number; exit: boolean }
  | {
      kind: 'branch'
      id: string
      index: number
      next: string
      whenTrue: string
      whenFalse: string
      condition: (context: StepContext) => boolean
    }

export interface SequenceDefinition {
  readonly id: string
  readonly version: number
  readonly goals: readonly string[]
  /** The steps in order, branches flattened (whenTrue steps, then whenFalse steps, after their branch). */
  readonly nodes: readonly ProgramNode[]
  /** The node of an id. */
  node(id: string): ProgramNode | undefined
}

function fail(code: 'E_CONFIG' | 'E_VALIDATION', field: string, message: string): never {
  throw new MailstreamError(code, `${field}: ${message}`, { field })
}

function checkName(value: unknown, field: string, code: 'E_CONFIG' | 'E_VALIDATION' = 'E_CONFIG'): string {
  if (typeof value !== 'string' || !NAME_RE.test(value)) {
    fail(code, field, `must be 1-40 characters of A-Z a-z 0-9 _ - (got ${showValue(value)})`)
  }
  return value
}

/** A duration as ms; `E_CONFIG` naming `field` when it is not one (0 to 366 days). */
export function parseDuration(value: unknown, field: string): number {
  let ms: number | undefined
  if (typeof value === 'number' && Number.isFinite(value)) ms = value
  else if (typeof value === 'string') {
    const match = DURATION_RE.exec(value.trim())
    if (match) ms = Number(match[1]) * (UNITS[match[2] as string] as number)
  }
  if (ms === undefined || ms < 0 || ms > MAX_DURATION_MS) {
    fail(
      'E_CONFIG',
      field,
      `expected a duration such as '3d', '12h', '30m' or a number of ms up to 366 days, got ${showValue(value)}`,
    )
  }
  return Math.round(ms)
}

/** Sends one email: a template (by name) with the enrolment's data, or the fields `options.job` gives. */
export function send(template: string | undefined, options: SendOptions = {}): SequenceStep {
  return { kind: 'send', template, options }
}

/** Waits `duration` (held to the calendar's next open time, when the sequences have one). */
export function delay(duration: Duration, options: DelayOptions = {}): SequenceStep {
  return { kind: 'delay', ms: parseDuration(duration, 'delay'), options }
}

/** Waits for `event` (from `signal(address, event)`) at most `timeout`. An event signalled earlier in the enrolment counts. */
export function waitFor(event: string, options: WaitForOptions): SequenceStep {
  checkName(event, 'waitFor.event')
  if (typeof options !== 'object' || options === null) fail('E_CONFIG', 'waitFor.timeout', 'is required')
  const onTimeout = options.onTimeout ?? 'continue'
  if (onTimeout !== 'continue' && onTimeout !== 'exit') {
    fail('E_CONFIG', 'waitFor.onTimeout', `must be 'continue' or 'exit' (got ${showValue(onTimeout)})`)
  }
  return {
    kind: 'waitFor',
    event,
    timeoutMs: parseDuration(options.timeout, 'waitFor.timeout'),
    onTimeout,
    id: options.id,
  }
}

/**
 * Runs the steps of `whenTrue` when `condition(context)` is true, those of `whenFalse` otherwise;
 * both go on with the steps after the branch. (Lists, not `{ then }`: an object with `then` is a thenable.)
 */
export function branch(
  condition: (context: StepContext) => boolean,
  whenTrue: readonly SequenceStep[],
  whenFalse: readonly SequenceStep[] = [],
  options: BranchOptions = {},
): SequenceStep {
  if (typeof condition !== 'function') fail('E_CONFIG', 'branch.condition', 'must be a function (context) => boolean')
  return { kind: 'branch', condition, whenTrue, whenFalse, options }
}

/**
 * Checks a sequence and flattens it. Throws `E_CONFIG` naming the field (`steps[2].id`,
 * `steps[1].whenTrue[0].template`...).
 */
export function defineSequence(input: SequenceDefinitionInput): SequenceDefinition {
  if (typeof input !== 'object' || input === null) fail('E_CONFIG', 'sequence', 'expected { id, steps }')
  for (const key of Object.keys(input)) {
    if (!['id', 'version', 'steps', 'goals'].includes(key)) fail('E_CONFIG', `sequence.${key}`, 'unknown option')
  }
  const id = checkName(input.id, 'id')
  const version = input.version ?? 1
  if (!Number.isInteger(version) || version < 1 || version > 1_000_000) {
    fail('E_CONFIG', 'version', `must be an integer from 1 (got ${showValue(version)})`)
  }
  const goals = input.goals ?? []
  if (!Array.isArray(goals)) fail('E_CONFIG', 'goals', 'must be a list of event names')
  for (const [i, goal] of goals.entries()) checkName(goal, `goals[${i}]`)
  if (!Array.isArray(input.steps) || input.steps.length === 0) fail('E_CONFIG', 'steps', 'must be a non-empty list')

  const nodes: ProgramNode[] = []
  const counters = { send: 0, delay: 0, branch: 0 }
  const seen = new Set<string>()

  function stepId(given: unknown, fallback: string, field: string): string {
    const chosen = given === undefined ? fallback : checkName(given, `${field}.id`)
    if (seen.has(chosen)) {
      fail('E_CONFIG', `${field}.id`, `'${chosen}' names two steps: give each step its own id`)
    }
    seen.add(chosen)
    return chosen
  }

  type Tree = { node: ProgramNode; whenTrue?: Tree[]; whenFalse?: Tree[] }

  // First pass: nodes in order (a branch, its whenTrue steps, then its whenFalse steps), with their ids.
  function build(steps: readonly SequenceStep[], path: string): Tree[] {
    if (!Array.isArray(steps)) fail('E_CONFIG', path, 'must be a list of steps')
    return steps.map((step, i): Tree => {
      const field = `${path}[${i}]`
      if (typeof step !== 'object' || step === null || !('kind' in step)) {
        fail('E_CONFIG', field, 'expected a step made by send(), delay(), waitFor() or branch()')
      }
      const index = nodes.length
      if (step.kind === 'send') {
        counters.send++
        const { template, options } = step
        if (template !== undefined && (typeof template !== 'string' || !TEMPLATE_NAME_RE.test(template))) {
          fail('E_CONFIG', `${field}.template`, `must be a template name (got ${showValue(template)})`)
        }
        if (options.job !== undefined && typeof options.job !== 'function') {
          fail('E_CONFIG', `${field}.job`, 'must be a function (context) => job fields')
        }
        if (template === undefined && options.job === undefined) {
          fail('E_CONFIG', `${field}.template`, 'give a template, or a job function that sets the content')
        }
        if (options.data !== undefined && (typeof options.data !== 'object' || options.data === null)) {
          fail('E_CONFIG', `${field}.data`, 'must be an object')
        }
        const fallback = template !== undefined && NAME_RE.test(template) ? template : `send-${counters.send}`
        const id = stepId(options.id, fallback, field)
        const node: ProgramNode = { kind: 'send', id, index, next: '', template, options }
        nodes.push(node)
        return { node }
      }
      if (step.kind === 'delay') {
        counters.delay++
        const id = stepId(step.options.id, `delay-${counters.delay}`, field)
        const node: ProgramNode = {
          kind: 'delay',
          id,
          index,
          next: '',
          ms: step.ms,
          calendar: step.options.calendar !== false,
        }
        nodes.push(node)
        return { node }
      }
      if (step.kind === 'waitFor') {
        const id = stepId(step.id, `wait-${step.event}`, field)
        const { event, timeoutMs } = step
        const node: ProgramNode = {
          kind: 'waitFor',
          id,
          index,
          next: '',
          event,
          timeoutMs,
          exit: step.onTimeout === 'exit',
        }
        nodes.push(node)
        return { node }
      }
      if (step.kind === 'branch') {
        counters.branch++
        const id = stepId(step.options?.id, `branch-${counters.branch}`, field)
        const node: ProgramNode = {
          kind: 'branch',
          id,
          index,
          next: '',
          whenTrue: '',
          whenFalse: '',
          condition: step.condition,
        }
        nodes.push(node)
        return {
          node,
          whenTrue: build(step.whenTrue, `${field}.whenTrue`),
          whenFalse: build(step.whenFalse, `${field}.whenFalse`),
        }
      }
      return fail('E_CONFIG', field, 'expected a step made by send(), delay(), waitFor() or branch()')
    })
  }

  // Second pass: each step goes on to the next of its list; the last of a list to what follows its branch.
  function link(list: readonly Tree[], after: string): void {
    list.forEach((tree, i) => {
      const next = list[i + 1]?.node.id ?? after
      tree.node.next = next
      if (tree.node.kind === 'branch') {
        link(tree.whenTrue ?? [], next)
        link(tree.whenFalse ?? [], next)
        tree.node.whenTrue = tree.whenTrue?.[0]?.node.id ?? next
        tree.node.whenFalse = tree.whenFalse?.[0]?.node.id ?? next
      }
    })
  }

  link(build(input.steps, 'steps'), '')
  const byId = new Map(nodes.map((node) => [node.id, node]))
  return Object.freeze({ id, version, goals: Object.freeze([...goals]), nodes, node: (name: string) => byId.get(name) })
}
