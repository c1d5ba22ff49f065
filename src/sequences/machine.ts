// The step machine: from where an enrolment stands, what the runner does next. Pure: no Redis, no clock.
import type { ProgramNode, SequenceDefinition, StepContext } from './steps.js'

export type SendNode = Extract<ProgramNode, { kind: 'send' }>

/** What to do with a due enrolment. */
export type Action =
  /** Send `node` (the pointer is at it), then go on from `node.next`. */
  | { kind: 'send'; node: SendNode }
  /** Store `step` as the pointer, due at `at` (a delay). */
  | { kind: 'sleep'; step: string; at: number }
  /** Wait at the waitFor step `step` for `event` until `until`. */
  | { kind: 'wait'; step: string; event: string; until: number }
  /** The sequence is over. */
  | { kind: 'done' }
  /** A waitFor with `onTimeout: 'exit'` timed out. */
  | { kind: 'exit'; step: string; reason: 'timeout' }

export interface Position {
  /** The id of the step to run ('' past the end). */
  step: string
  /** The index it had in the definition the enrolment last ran under (for a step a new version removed). */
  index: number
  /** The version of that definition. */
  version: number
  /** True when the enrolment waits at `step` (a waitFor): being due means its timeout passed. */
  waiting: boolean
  /** When it was due, epoch ms. */
  dueAt: number
}

/** Holds the end of a delay to the calendar's next open time (identity without a calendar). */
export type Hold = (atMs: number) => number

/**
 * The step an enrolment is at under `definition`: the same step id when the definition still has
 * it; otherwise (a step removed in a new version) the step now at its old index, or the end.
 */
export function currentStep(definition: SequenceDefinition, position: Position): string {
  if (position.step === '' || definition.node(position.step)) return position.step
  return definition.nodes[position.index]?.id ?? ''
}

/**
 * Runs the steps that take no time (branches, delays already over, waits whose event came
 * already) and stops at the first that does: a send, a delay, a wait, or the end.
 */
export function plan(definition: SequenceDefinition, position: Position, context: StepContext, hold: Hold): Action {
  let step = currentStep(definition, position)
  // Still waiting only if the pointer did not move (a new version may have removed the waitFor).
  let waiting = position.waiting && step === position.step
  // Steps only go forward, so this bound is never reached by a valid program.
  for (let guard = 0; guard <= definition.nodes.length; guard++) {
    const node = step === '' ? undefined : definition.node(step)
    if (!node) return { kind: 'done' }
    switch (node.kind) {
      case 'send':
        return { kind: 'send', node }
      case 'delay': {
        const plain = context.now + node.ms
        const at = node.calendar ? Math.max(plain, hold(plain)) : plain
        if (at > context.now) return { kind: 'sleep', step: node.next, at }
        step = node.next
        break
      }
      case 'waitFor': {
        if (context.events[node.event] !== undefined) {
          step = node.next
          break
        }
        if (!waiting) return { kind: 'wait', step: node.id, event: node.event, until: context.now + node.timeoutMs }
        if (context.now < position.dueAt)
          return { kind: 'wait', step: node.id, event: node.event, until: position.dueAt }
        if (node.exit) return { kind: 'exit', step: node.id, reason: 'timeout' }
        step = node.next
        break
      }
      case 'branch':
        step = node.condition(context) ? node.whenTrue : node.whenFalse
        break
    }
    waiting = false
  }
  return { kind: 'done' }
}
