// Sequences: series of emails over days, one Redis hash per enrolment and its next step in a due set.
import { createHash } from 'node:crypto'
import { z } from 'zod'
import { type Calendar, createSendingCalendar, parseTimeZone, type WeeklyHours } from '../calendar.js'
import { MailstreamError } from '../errors.js'
import { addressKey, type EmailJobInput, LOCALE_RE, showValue } from '../job.js'
import { sequenceKeys } from '../keys.js'
import { defineScripts } from '../lua/index.js'
import { claimSequences, type EnrolmentStatus, enrolSequence, type MoveCall, moveSequence } from '../lua/sequences.js'
import { parseOptions } from '../options.js'
import type { EmailQueue } from '../queue/index.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import { boundedClient, connectionOptionsShape, type ErrorReport, guardMethods } from '../redis.js'
import { type Action, plan } from './machine.js'
import type { SequenceDefinition, StepContext } from './steps.js'

export { type KoreanWelcomeOptions, koreanWelcomeSeries } from './korean-welcome.js'
export {
  type BranchOptions,
  branch,
  type DelayOptions,
  type Duration,
  defineSequence,
  delay,
  type SendOptions,
  type SequenceDefinition,
  type SequenceDefinitionInput,
  type SequenceStep,
  type StepContext,
  send,
  type WaitForOptions,
  waitFor,
} from './steps.js'
export type { EnrolmentStatus }

export interface SequencesOptions {
  /** The queue the emails go through (made by `createEmailQueue`); the state lives under its prefix, on its client. */
  queue: EmailQueue
  /** The definitions (`defineSequence`), with distinct ids. */
  sequences: readonly SequenceDefinition[]
  /**
   * When delays may end: a delay that ends outside these weekly hours is held to their next
   * opening. The contact's `timeZone` (given to `enroll`) replaces the calendar's. Default: none.
   */
  calendar?: WeeklyHours
  /**
   * How long a runner holds an enrolment it took (1 s to 1 h): one that dies meanwhile leaves it to
   * another runner after this. Default 60000.
   */
  leaseMs?: number
  /** How often `start()` looks for due steps, in ms (10 to 3 600 000). Default 1000. */
  intervalMs?: number
  /** Most enrolments one `runOnce` takes (1-1000). Default 100. */
  batchSize?: number
  /** The clock, epoch ms (tests give a fake one). Default `Date.now`. */
  now?: () => number
  /** Longest wait for each Redis reply, in ms (10 to 600 000). Default 5000. */
  commandTimeoutMs?: number
  /**
   * Called with the errors of the runner started by `start()` (each, then a backoff) and of an
   * enrolment ended as `invalid` (its email was refused at enqueue). Default: none.
   */
  onError?: (error: MailstreamError) => void
}

export interface Contact {
  address: string
  name?: string
  /** The emails' locale (`ko`, `en`). */
  locale?: string
  /** IANA time zone: the sending calendar is read in it. */
  timeZone?: string
}

export interface EnrollOptions {
  /** Start again an enrolment that is over (done or exited); an active one is never restarted. Default false. */
  restart?: boolean
}

export interface EnrollResult {
  /** False when the address was enrolled already (nothing was written). */
  created: boolean
  status: EnrolmentStatus
}

export interface Enrolment {
  sequenceId: string
  address: string
  name?: string
  locale?: string
  timeZone?: string
  data: Record<string, unknown>
  status: EnrolmentStatus
  /** The id of the next step ('' past the end). */
  step: string
  /** The version of the definition its last step ran under; `startedVersion` the one it began on. */
  version: number
  startedVersion: number
  /** How many times it began (`restart`). */
  run: number
  enrolledAt: number
  updatedAt: number
  /** When it is next due, epoch ms (active and waiting only). */
  nextAt?: number
  waitingFor?: string
  exitReason?: string
  finishedAt?: number
  /** The id of the last email it enqueued. */
  lastJob?: string
  /** Why the last email was refused, for an enrolment ended as `invalid`. */
  error?: string
  events: Record<string, number>
}

export interface SequenceStepStats {
  id: string
  kind: 'send' | 'delay' | 'waitFor' | 'branch'
  /** Enrolments (active or waiting) whose next step this is. */
  at: number
  /** Enrolments that moved past this step with its email enqueued (once each, crashes included). */
  sent: number
}

export interface SequenceStats {
  enrolled: number
  active: number
  waiting: number
  done: number
  exited: number
  /** Exits by reason: manual (or the reason given to `exit`), suppressed, goal:<event>, timeout, invalid. */
  exitReasons: Record<string, number>
  steps: SequenceStepStats[]
}

export interface RunResult {
  /** Enrolments taken. */
  claimed: number
  /** Steps whose email was enqueued and the enrolment moved past (a job an earlier, crashed run wrote counts here). */
  sent: number
  done: number
  exited: number
}

export interface Sequences {
  /** Enrols `contact` in a sequence, once per (sequence, address): the first step is due at once. */
  enroll(
    sequenceId: string,
    contact: Contact | string,
    data?: Record<string, unknown>,
    options?: EnrollOptions,
  ): Promise<EnrollResult>
  /** Ends an enrolment; its last email is cancelled if not sent yet. Resolves false when there was none running. */
  exit(sequenceId: string, address: string, reason?: string): Promise<boolean>
  /**
   * Tells the sequences an event of an address: a goal event ends its enrolments; others resume
   * those waiting for it and are remembered for later `waitFor` steps and branches.
   */
  signal(address: string, event: string): Promise<{ resumed: number; exited: number }>
  get(sequenceId: string, address: string): Promise<Enrolment | null>
  stats(sequenceId: string): Promise<SequenceStats>
  /** Runs the steps that are due (at most `batchSize` enrolments). */
  runOnce(options?: { now?: number }): Promise<RunResult>
  /** Runs `runOnce` every `intervalMs` (sooner while there is more), errors to `onError` with backoff. */
  start(): void
  /** Stops the loop of `start()`; resolves once a run under way has ended. */
  stop(): Promise<void>
}

const REASON_RE = /^[A-Za-z0-9_:.-]{1,64}$/
const MAX_DATA_BYTES = 64 * 1024
const MAX_BACKOFF_MS = 30_000
/** Refusals of an email that no retry will change: the enrolment ends as `invalid`. */
const REFUSALS = new Set(['E_VALIDATION', 'E_TEMPLATE', 'E_CONSENT', 'E_IDEMPOTENCY_CONFLICT'])
const ACTIVE: readonly EnrolmentStatus[] = ['active', 'waiting']

const optionsSchema = z.strictObject({
  queue: z.custom<EmailQueue>(isEmailQueue, 'must be a queue made by createEmailQueue'),
  sequences: z
    .array(
      z.custom<SequenceDefinition>(
        (value) => typeof value === 'object' && value !== null && Array.isArray((value as SequenceDefinition).nodes),
        'must be a sequence made by defineSequence',
      ),
    )
    .min(1)
    .refine((list) => new Set(list.map((item) => item.id)).size === list.length, 'two sequences have the same id'),
  calendar: z.custom<WeeklyHours>((value) => typeof value === 'object' && value !== null).optional(),
  leaseMs: z.number().int().min(1000).max(3_600_000).default(60_000),
  intervalMs: z.number().int().min(10).max(3_600_000).default(1000),
  batchSize: z.number().int().min(1).max(1000).default(100),
  now: z.custom<() => number>((value) => typeof value === 'function', 'must be a function () => epoch ms').optional(),
  ...connectionOptionsShape,
})

const fail = (field: string, message: string): never => {
  throw new MailstreamError('E_VALIDATION', `${field}: ${message}`, { field })
}

/** The first 16 hex digits of SHA-256 of the normalised address: its part of the enrolment key and job ids. */
export const addressHash = (address: string): string => createHash('sha256').update(address).digest('hex').slice(0, 16)

/** The id of the email of a step: the same on every run, so that a step run twice is a duplicate job. */
export const sequenceJobId = (sequenceId: string, hash: string, run: number, stepId: string): string =>
  `seq.${sequenceId}.${hash}.${run}.${stepId}`

function checkContact(input: unknown): Required<Pick<Contact, 'address'>> & Contact {
  const contact = typeof input === 'string' ? { address: input } : input
  if (typeof contact !== 'object' || contact === null)
    fail('contact', 'expected an address or { address, name?, locale?, timeZone? }')
  const { address, name, locale, timeZone, ...rest } = contact as Contact
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) fail(`contact.${unknown}`, 'unknown field')
  const out: Contact = { address: addressKey(address, 'contact.address') }
  if (name !== undefined) {
    if (typeof name !== 'string' || name.length > 200 || /[\r\n]/.test(name)) {
      fail('contact.name', 'must be one line of at most 200 characters')
    }
    out.name = name
  }
  if (locale !== undefined) {
    if (typeof locale !== 'string' || !LOCALE_RE.test(locale))
      fail('contact.locale', `must be a language tag such as ko (got ${showValue(locale)})`)
    out.locale = locale
  }
  if (timeZone !== undefined) out.timeZone = parseTimeZone(timeZone, 'contact.timeZone')
  return out
}

function checkData(data: unknown): string {
  if (data === undefined) return '{}'
  if (typeof data !== 'object' || data === null || Array.isArray(data)) fail('data', 'must be an object')
  let json: string
  try {
    json = JSON.stringify(data)
  } catch (error) {
    return fail('data', `must be JSON (${(error as Error).message})`)
  }
  if (Buffer.byteLength(json) > MAX_DATA_BYTES) fail('data', `must be at most ${MAX_DATA_BYTES} bytes as JSON`)
  return json
}

function checkName(value: unknown, field: string): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(value)) {
    fail(field, `must be 1-40 characters of A-Z a-z 0-9 _ - (got ${showValue(value)})`)
  }
  return value as string
}

const optionalNumber = (value: string | undefined) => (value === undefined || value === '' ? undefined : Number(value))

function parseEnrolment(hash: Record<string, string>): Enrolment | null {
  if (!hash.status) return null
  const events: Record<string, number> = {}
  for (const [field, value] of Object.entries(hash)) if (field.startsWith('ev:')) events[field.slice(3)] = Number(value)
  let data: Record<string, unknown> = {}
  try {
    data = JSON.parse(hash.data ?? '{}')
  } catch {}
  const out: Enrolment = {
    sequenceId: hash.sequence ?? '',
    address: hash.address ?? '',
    data,
    status: hash.status as EnrolmentStatus,
    step: hash.step ?? '',
    version: Number(hash.version ?? 1),
    startedVersion: Number(hash.startedVersion ?? hash.version ?? 1),
    run: Number(hash.run ?? 1),
    enrolledAt: Number(hash.enrolledAt ?? 0),
    updatedAt: Number(hash.updatedAt ?? 0),
    events,
  }
  const optional = {
    name: hash.name,
    locale: hash.locale,
    timeZone: hash.timeZone,
    nextAt: optionalNumber(hash.nextAt),
    waitingFor: hash.waitingFor,
    exitReason: hash.exitReason,
    finishedAt: optionalNumber(hash.finishedAt),
    lastJob: hash.lastJob,
    error: hash.error,
  }
  for (const [field, value] of Object.entries(optional)) {
    if (value !== undefined && value !== '') (out as unknown as Record<string, unknown>)[field] = value
  }
  return out
}

export function createSequences(options: SequencesOptions): Sequences {
  const config = parseOptions(optionsSchema, options, 'createSequences')
  if (config.calendar !== undefined) createSendingCalendar(config.calendar, 'calendar', 'E_CONFIG')
  const { queue } = config
  const inner = queueInternals(queue)
  defineScripts(inner.redis)
  const client = boundedClient(inner.redis, config.commandTimeoutMs)
  const keys = sequenceKeys(inner.prefix)
  const definitions = new Map(config.sequences.map((definition) => [definition.id, definition]))
  const clock = config.now ?? Date.now
  const report = (error: MailstreamError) => {
    try {
      ;(config.onError as ErrorReport | undefined)?.(error)
    } catch {
      // The host's reporter failing must not stop the runner.
    }
  }

  const calendars = new Map<string, Calendar>()
  function holdFor(timeZone: string | undefined): (atMs: number) => number {
    if (config.calendar === undefined) return (atMs) => atMs
    const zone = timeZone ?? config.calendar.timeZone
    let calendar = calendars.get(zone)
    if (!calendar) {
      calendar = createSendingCalendar({ ...config.calendar, timeZone: zone }, 'calendar', 'E_CONFIG')
      if (calendars.size < 1000) calendars.set(zone, calendar)
    }
    return (calendar as Calendar).nextOpen
  }

  function definitionOf(sequenceId: unknown): SequenceDefinition {
    const definition = definitions.get(checkName(sequenceId, 'sequenceId'))
    if (!definition) {
      throw new MailstreamError(
        'E_NOT_FOUND',
        `sequenceId: no sequence ${showValue(sequenceId)} was given to createSequences`,
        {
          field: 'sequenceId',
        },
      )
    }
    return definition
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
    const move = (step: string, next: Omit<MoveCall, 'key' | 'statsKey' | 'expect' | 'step' | 'now'>) =>
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
        const problem = new MailstreamError(
          'E_VALIDATION',
          `sequence ${definition.id}: a branch condition threw: ${(error as Error)?.message}`,
          { cause: error },
        )
        report(problem)
        if (await endEnrolment(definition, key, enrolment, 'invalid', now, { error: problem.message })) result.exited++
        return
      }
      if (action.kind === 'sleep') {
        await move(action.step, { status: 'active', nextAt: action.at })
        return
      }
      if (action.kind === 'wait') {
        await move(action.step, { status: 'waiting', nextAt: action.until, fields: { waitingFor: action.event } })
        return
      }
      if (action.kind === 'done') {
        if (await move('', { status: 'done', nextAt: 0 })) result.done++
        return
      }
      if (action.kind === 'exit') {
        if (await move(action.step, { status: 'exited', nextAt: 0, exitReason: action.reason })) result.exited++
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

  async function runOnce({ now = clock() }: { now?: number } = {}): Promise<RunResult> {
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

  const methods = {
    async enroll(
      sequenceId: string,
      contactInput: Contact | string,
      data?: Record<string, unknown>,
      enrollOptions: EnrollOptions = {},
    ) {
      const definition = definitionOf(sequenceId)
      const contact = checkContact(contactInput)
      const json = checkData(data)
      if (typeof enrollOptions !== 'object' || enrollOptions === null) fail('options', 'must be an object')
      const { restart = false } = enrollOptions
      if (typeof restart !== 'boolean') fail('options.restart', 'must be a boolean')
      const fields: Record<string, string> = {
        sequence: definition.id,
        address: contact.address,
        data: json,
        version: String(definition.version),
        startedVersion: String(definition.version),
      }
      if (contact.name !== undefined) fields.name = contact.name
      if (contact.locale !== undefined) fields.locale = contact.locale
      if (contact.timeZone !== undefined) fields.timeZone = contact.timeZone
      return enrolSequence(client, keys, {
        key: keys.enrolment(definition.id, addressHash(contact.address)),
        statsKey: keys.stats(definition.id),
        now: clock(),
        restart,
        firstStep: (definition.nodes[0] as { id: string }).id,
        fields,
      })
    },

    async exit(sequenceId: string, address: string, reason = 'manual') {
      const definition = definitionOf(sequenceId)
      const normalised = addressKey(address, 'address')
      if (typeof reason !== 'string' || !REASON_RE.test(reason))
        fail('reason', 'must be 1-64 characters of A-Z a-z 0-9 _ : . -')
      const key = keys.enrolment(definition.id, addressHash(normalised))
      const enrolment = parseEnrolment(await client.hgetall(key))
      if (!enrolment || !ACTIVE.includes(enrolment.status)) return false
      return endEnrolment(definition, key, enrolment, reason, clock())
    },

    async signal(address: string, event: string) {
      const normalised = addressKey(address, 'address')
      checkName(event, 'event')
      const hash = addressHash(normalised)
      const now = clock()
      const outcome = { resumed: 0, exited: 0 }
      await Promise.all(
        [...definitions.values()].map(async (definition) => {
          const key = keys.enrolment(definition.id, hash)
          const enrolment = parseEnrolment(await client.hgetall(key))
          if (!enrolment || !ACTIVE.includes(enrolment.status)) return
          if (definition.goals.includes(event)) {
            if (await endEnrolment(definition, key, enrolment, `goal:${event}`, now)) outcome.exited++
            return
          }
          await client.hsetnx(key, `ev:${event}`, now)
          if (enrolment.status === 'waiting' && enrolment.waitingFor === event) {
            // Due now at the same step: the runner sees the event and goes on.
            const resumed = await moveSequence(client, keys, {
              key,
              statsKey: keys.stats(definition.id),
              expect: { run: String(enrolment.run), step: enrolment.step || '-', statuses: ['waiting'] },
              step: '',
              status: 'active',
              nextAt: now,
              now,
            })
            if (resumed) outcome.resumed++
          }
        }),
      )
      return outcome
    },

    async get(sequenceId: string, address: string) {
      const definition = definitionOf(sequenceId)
      const normalised = addressKey(address, 'address')
      return parseEnrolment(await client.hgetall(keys.enrolment(definition.id, addressHash(normalised))))
    },

    async stats(sequenceId: string) {
      const definition = definitionOf(sequenceId)
      const hash = await client.hgetall(keys.stats(definition.id))
      const count = (field: string) => Math.max(0, Number(hash[field] ?? 0))
      const exitReasons: Record<string, number> = {}
      for (const [field, value] of Object.entries(hash)) {
        if (field.startsWith('exited:')) exitReasons[field.slice(7)] = Number(value)
      }
      return {
        enrolled: count('enrolled'),
        active: count('status:active'),
        waiting: count('status:waiting'),
        done: count('status:done'),
        exited: count('status:exited'),
        exitReasons,
        steps: definition.nodes.map((node) => ({
          id: node.id,
          kind: node.kind,
          at: count(`at:${node.id}`),
          sent: count(`sent:${node.id}`),
        })),
      }
    },

    runOnce,
  }

  const guarded = guardMethods(methods, config.commandTimeoutMs, { unbounded: ['runOnce'] })

  let timer: ReturnType<typeof setTimeout> | undefined
  let running: Promise<void> | undefined
  let started = false
  let failures = 0

  function schedule(ms: number): void {
    if (!started) return
    timer = setTimeout(tick, ms)
  }

  function tick(): void {
    timer = undefined
    running = guarded.runOnce().then(
      (result) => {
        failures = 0
        // A full batch means more are due: go on at once (after other work of the loop).
        schedule(result.claimed >= config.batchSize ? 0 : config.intervalMs)
      },
      (error: unknown) => {
        failures++
        report(error as MailstreamError)
        schedule(Math.min(MAX_BACKOFF_MS, config.intervalMs * 2 ** Math.min(failures, 10)))
      },
    )
  }

  return {
    ...guarded,
    start() {
      if (started) return
      started = true
      schedule(0)
    },
    async stop() {
      started = false
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      await running
    },
  }
}
