// The runner of sequences: each claimed enrolment moved on as far as it goes now, its emails
// enqueued under fixed job ids and every move a compare-and-set, so a crash repeats nothing.
import { type Calendar, createSendingCalendar, type WeeklyHours } from '../calendar.js'
import { MailstreamError } from '../errors.js'
import type { EmailJobInput } from '../job.js'
import type { sequenceKeys } from '../keys.js'
import { claimSequences, type MoveCall, moveSequence } from '../lua/sequences.js'
import type { EmailQueue } from '../queue/index.js'
import type { RedisClient } from '../redis.js'
import { ACTIVE, addressHash, parseEnrolment, sequenceJobId } from './enrolment.js'
import { type Action, plan } from './machine.js'
import type { SequenceDefinition, StepContext } from './steps.js'
import type { Enrolment, RunResult } from './types.js'

/** Refusals of an email that no retry will change: the enrolment ends as `invalid`. */
const REFUSALS = new Set(['E_VALIDATION', 'E_TEMPLATE', 'E_CONSENT', 'E_IDEMPOTENCY_CONFLICT'])

/** The calendar's hold of a delay's end, read in the contact's zone (one calendar per zone, kept). */
function createHolds(calendar: WeeklyHours | undefined) {
  const calendars = new Map<string, Calendar>()
  return function holdFor(timeZone: string | undefined): (atMs: number) => number {
    if (calendar === undefined) return (atMs) => atMs
    const zone = timeZone ?? calendar.timeZone
    let held = calendars.get(zone)
    if (!held) {
      held = createSendingCalendar({ ...calendar, timeZone: zone }, 'calendar', 'E_CONFIG')
      if (calendars.size < 1000) calendars.set(zone, held)
    }
    return (held as Calendar).nextOpen
  }
}

const indexOf = (definition: SequenceDefinition, step: string) =>
  step === '' ? definition.nodes.length : (definition.node(step)?.index ?? definition.nodes.length)

const contextOf = (definition: SequenceDefinition, enrolment: Enrolment, now: number): StepContext => ({
  sequenceId: definition.id,
  address: enrolment.address,
  ...(enrolment.name !== undefined && { name: enrolment.name }),
  ...(enrolment.locale !== undefined && { locale: enrolment.locale }),
  ...(enrolment.timeZone !== undefined && { timeZone: enrolment.timeZone }),
  data: enrolment.data,
  enrolledAt: enrolment.enrolledAt,
  events: enrolment.events,
  now,
})

/** The email of a send step for one enrolment, under its fixed job id. */
function jobOf(
  definition: SequenceDefinition,
  action: Extract<Action, { kind: 'send' }>,
  enrolment: Enrolment,
  id: string,
  context: StepContext,
): EmailJobInput {
  const { node } = action
  const extra = node.options.job ? node.options.job(context) : {}
  const data = {
    ...(enrolment.name !== undefined && { name: enrolment.name }),
    ...enrolment.data,
    ...node.options.data,
    ...extra.data,
  }
  return {
    type: node.options.type ?? 'sequence',
    ...(node.template !== undefined && { template: node.template }),
    ...(enrolment.locale !== undefined && { locale: enrolment.locale }),
    ...extra,
    tags: { sequence: definition.id, step: node.id, ...extra.tags },
    data,
    id,
    to: enrolment.name !== undefined ? { name: enrolment.name, address: enrolment.address } : enrolment.address,
  }
}

type Move = (step: string, next: Omit<MoveCall, 'key' | 'statsKey' | 'expect' | 'step' | 'now'>) => Promise<boolean>

/** A step that sends nothing, recorded: a sleep, a wait for an event, the end, or an exit. */
async function settle(action: Exclude<Action, { kind: 'send' }>, move: Move, result: RunResult): Promise<void> {
  if (action.kind === 'sleep') await move(action.step, { status: 'active', nextAt: action.at })
  else if (action.kind === 'wait') {
    await move(action.step, { status: 'waiting', nextAt: action.until, fields: { waitingFor: action.event } })
  } else if (action.kind === 'done') {
    if (await move('', { status: 'done', nextAt: 0 })) result.done++
  } else if (await move(action.step, { status: 'exited', nextAt: 0, exitReason: action.reason })) result.exited++
}

const branchError = (definition: SequenceDefinition, error: unknown) =>
  new MailstreamError(
    'E_VALIDATION',
    `sequence ${definition.id}: a branch condition threw: ${(error as Error)?.message}`,
    {
      cause: error,
    },
  )

/** Ending an enrolment: moved to `exited` if it is still running, and its last email cancelled. */
function createEnder(client: RedisClient, keys: ReturnType<typeof sequenceKeys>, queue: EmailQueue) {
  /** Cancels the enrolment's last email when it has not gone yet; a failure leaves it to the worker's suppression check. */
  async function cancelJob(id: string | undefined): Promise<void> {
    if (id) await queue.cancel(id).catch(() => false)
  }

  async function endEnrolment(
    definition: SequenceDefinition,
    key: string,
    enrolment: Enrolment,
    reason: string,
    now: number,
    fields: Record<string, string> = {},
  ): Promise<boolean> {
    const moved = await moveSequence(client, keys, {
      key,
      statsKey: keys.stats(definition.id),
      expect: { run: String(enrolment.run), step: '', statuses: ACTIVE },
      step: '',
      status: 'exited',
      nextAt: 0,
      now,
      exitReason: reason,
      fields,
    })
    if (moved) await cancelJob(enrolment.lastJob)
    return moved
  }

  return { cancelJob, endEnrolment }
}

export function createSequenceRunner(options: {
  client: RedisClient
  keys: ReturnType<typeof sequenceKeys>
  queue: EmailQueue
  definitions: ReadonlyMap<string, SequenceDefinition>
  calendar: WeeklyHours | undefined
  leaseMs: number
  batchSize: number
  report(error: MailstreamError): void
}) {
  const { client, keys, queue, definitions, report } = options
  const config = options
  const holdFor = createHolds(options.calendar)

  const { cancelJob, endEnrolment } = createEnder(client, keys, queue)

  /** Moves one claimed enrolment on as far as it goes now. */
  async function advance(key: string, now: number, leaseUntil: number, result: RunResult): Promise<void> {
    const hash = await client.hgetall(key)
    const enrolment = parseEnrolment(hash)
    if (!enrolment || enrolment.status === 'done' || enrolment.status === 'exited') {
      await client.zrem(keys.due, key)
      return
    }
    const definition = definitions.get(enrolment.sequenceId)
    if (!definition) {
      // A runner without this definition (an older deploy): leave it for one that has it.
      await client.zadd(keys.due, 'XX', now + config.leaseMs, key)
      return
    }
    const statsKey = keys.stats(definition.id)
    const hash16 = addressHash(enrolment.address)
    const run = String(enrolment.run)
    if (await queue.suppression.has(enrolment.address)) {
      if (await endEnrolment(definition, key, enrolment, 'suppressed', now)) result.exited++
      return
    }
    let stored = enrolment.step
    let position = {
      step: enrolment.step,
      index: Number(hash.index ?? 0),
      version: enrolment.version,
      waiting: enrolment.status === 'waiting',
      dueAt: enrolment.nextAt ?? now,
    }
    let status = enrolment.status
    const hold = holdFor(enrolment.timeZone)
    const move: Move = (step, next) =>
      moveSequence(client, keys, {
        key,
        statsKey,
        expect: { run, step: stored === '' ? '-' : stored, statuses: [status] },
        step: step === '' ? '-' : step,
        now,
        ...next,
        fields: { version: String(definition.version), index: String(indexOf(definition, step)), ...next.fields },
      })
    // Each send is a round trip or three; a sequence is short, so the bound only stops a runaway definition.
    for (let sends = 0; sends <= definition.nodes.length; sends++) {
      const context = contextOf(definition, enrolment, now)
      let action: Action
      try {
        action = plan(definition, position, context, hold)
      } catch (error) {
        const problem = branchError(definition, error)
        report(problem)
        if (await endEnrolment(definition, key, enrolment, 'invalid', now, { error: problem.message })) result.exited++
        return
      }
      if (action.kind !== 'send') {
        await settle(action, move, result)
        return
      }
      const { node } = action
      // Branches taken on the way are stored first, so that a crash now resumes at this send.
      if (stored !== node.id || status !== 'active') {
        if (!(await move(node.id, { status: 'active', nextAt: leaseUntil }))) return
        stored = node.id
        status = 'active'
      }
      const id = sequenceJobId(definition.id, hash16, enrolment.run, node.id)
      try {
        await queue.enqueue(jobOf(definition, action, enrolment, id, context))
      } catch (error) {
        if (error instanceof MailstreamError && REFUSALS.has(error.code)) {
          report(error)
          if (await endEnrolment(definition, key, enrolment, 'invalid', now, { error: error.message })) result.exited++
          return
        }
        throw error
      }
      const moved = await move(node.next, {
        status: 'active',
        nextAt: leaseUntil,
        // Counted by the move, not the enqueue: a step retried after a crash finds its job there already.
        sentStep: node.id,
        fields: { lastJob: id },
      })
      if (!moved) {
        // Exited meanwhile (exit, goal): the email just enqueued must not go.
        if ((await client.hget(key, 'status')) === 'exited') await cancelJob(id)
        return
      }
      result.sent++
      enrolment.lastJob = id
      stored = node.next
      position = {
        step: node.next,
        index: indexOf(definition, node.next),
        version: definition.version,
        waiting: false,
        dueAt: now,
      }
    }
  }

  async function runOnce(now: number): Promise<RunResult> {
    const leaseUntil = now + config.leaseMs
    const claimed = await claimSequences(client, keys, { now, leaseUntil, count: config.batchSize })
    const result: RunResult = { claimed: claimed.length, sent: 0, done: 0, exited: 0 }
    let failure: unknown
    for (const key of claimed) {
      try {
        await advance(key, now, leaseUntil, result)
      } catch (error) {
        // Left leased: it is due again when the lease ends.
        failure ??= error
      }
    }
    if (failure !== undefined) throw failure
    return result
  }

  return { runOnce, endEnrolment }
}
