import { z } from 'zod'
import { createSendingCalendar, type WeeklyHours } from '../calendar.js'
import { MailstreamError } from '../errors.js'
import { addressKey, showValue } from '../job.js'
import { sequenceKeys } from '../keys.js'
import { defineScripts } from '../lua/index.js'
import { type EnrolmentStatus, enrolSequence, moveSequence } from '../lua/sequences.js'
import { parseOptions } from '../options.js'
import type { EmailQueue } from '../queue/index.js'
import { isEmailQueue, queueInternals } from '../queue/internals.js'
import { boundedClient, connectionOptionsShape, type ErrorReport, guardMethods } from '../redis.js'
import {
  ACTIVE,
  addressHash,
  checkContact,
  checkData,
  checkName,
  fail,
  parseEnrolment,
  parseStats,
  REASON_RE,
} from './enrolment.js'
import { createRunLoop } from './loop.js'
import { createSequenceRunner } from './runner.js'
import type { SequenceDefinition } from './steps.js'

export { addressHash, sequenceJobId } from './enrolment.js'
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

import type { Contact, EnrollOptions, Sequences, SequencesOptions } from './types.js'

export type {
  Contact,
  EnrollOptions,
  EnrollResult,
  Enrolment,
  RunResult,
  SequenceStats,
  SequenceStepStats,
  Sequences,
  SequencesOptions,
} from './types.js'
export type { EnrolmentStatus }

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

  const runner = createSequenceRunner({
    client,
    keys,
    queue,
    definitions,
    calendar: config.calendar,
    leaseMs: config.leaseMs,
    batchSize: config.batchSize,
    report,
  })
  const { endEnrolment } = runner
  const runOnce = ({ now = clock() }: { now?: number } = {}) => runner.runOnce(now)

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
      return parseStats(await client.hgetall(keys.stats(definition.id)), definition)
    },

    runOnce,
  }

  const guarded = guardMethods(methods, config.commandTimeoutMs, { unbounded: ['runOnce'] })

  const loop = createRunLoop({
    run: () => guarded.runOnce(),
    batchSize: config.batchSize,
    intervalMs: config.intervalMs,
    report,
  })

  return { ...guarded, start: loop.start, stop: loop.stop }
}
