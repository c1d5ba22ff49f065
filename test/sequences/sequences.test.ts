import type { Redis } from 'ioredis'
import { afterEach, describe, expect, test } from 'vitest'
import { createEmailQueue, type EmailQueue, MailstreamError } from '../../src/index.js'
import {
  addressHash,
  branch,
  createSequences,
  defineSequence,
  delay,
  type SequenceDefinition,
  type SequencesOptions,
  send,
  sequenceJobId,
  waitFor,
} from '../../src/sequences/index.js'
import { connect, keysOf, uniquePrefix, waitUntil } from '../helpers/redis.js'
import { freePort } from '../helpers/redis-server.js'

const DAY = 86_400_000
const START = Date.UTC(2026, 0, 5, 1, 0) // Monday 10:00 in Seoul
const READER = 'reader@example.com'
const content = { job: () => ({ subject: 'Hello', text: 'Hello' }) }

const redis: Redis = connect()
const queues: EmailQueue[] = []
afterEach(async () => {
  await Promise.all(queues.splice(0).map((queue) => queue.close()))
})

/** A queue on a fresh prefix, sequences on it with a fake clock, and readers of what was enqueued. */
function setup(sequences: SequenceDefinition[], options: Partial<SequencesOptions> = {}) {
  const prefix = uniquePrefix('seq')
  const queue = createEmailQueue({ redis, prefix })
  queues.push(queue)
  const clock = { now: START }
  const written: string[] = []
  const enqueue = queue.enqueue
  queue.enqueue = async (job) => {
    const result = await enqueue(job)
    if (!result.duplicate) written.push(result.id)
    return result
  }
  const runner = createSequences({ queue, sequences, now: () => clock.now, ...options })
  return {
    prefix,
    queue,
    clock,
    runner,
    /** Ids of the jobs the runner wrote (duplicates left out), in order. */
    async enqueued(): Promise<string[]> {
      return [...written]
    },
    /** Advances the fake clock and runs what is due. */
    async at(ms: number) {
      clock.now = ms
      return runner.runOnce()
    },
  }
}

const jobId = (sequenceId: string, step: string, address = READER, run = 1) =>
  sequenceJobId(sequenceId, addressHash(address), run, step)

const welcome = defineSequence({
  id: 'welcome',
  steps: [
    send(undefined, { id: 'hello', ...content }),
    delay('3d'),
    send(undefined, { id: 'best-of', ...content }),
    delay('4d'),
    send(undefined, { id: 'feedback', ...content }),
  ],
})

describe('sequences over a fake clock', () => {
  test('send and delay: each email when it is due, once, and the enrolment ends done', async () => {
    const t = setup([welcome])
    expect(await t.runner.enroll('welcome', { address: 'Reader@Example.com', name: '독자' }, { plan: 'free' })).toEqual(
      {
        created: true,
        status: 'active',
      },
    )
    expect(await t.at(START)).toMatchObject({ claimed: 1, sent: 1 })
    expect(await t.enqueued()).toEqual([jobId('welcome', 'hello')])
    expect(await t.runner.get('welcome', READER)).toMatchObject({
      status: 'active',
      step: 'best-of',
      nextAt: START + 3 * DAY,
      name: '독자',
      data: { plan: 'free' },
    })
    // Not due yet: nothing happens.
    expect(await t.at(START + 3 * DAY - 1)).toMatchObject({ claimed: 0 })
    await t.at(START + 3 * DAY)
    await t.at(START + 3 * DAY + 1)
    expect(await t.enqueued()).toHaveLength(2)
    await t.at(START + 7 * DAY)
    expect(await t.enqueued()).toEqual(['hello', 'best-of', 'feedback'].map((step) => jobId('welcome', step)))
    expect(await t.runner.get('welcome', READER)).toMatchObject({ status: 'done', step: '' })
    await t.at(START + 30 * DAY)
    expect(await t.enqueued()).toHaveLength(3)

    const job = await t.queue.getStatus(jobId('welcome', 'hello'))
    expect(job).toMatchObject({ status: 'queued' })
    const stats = await t.runner.stats('welcome')
    expect(stats).toMatchObject({ enrolled: 1, active: 0, done: 1, exited: 0 })
    expect(stats.steps.filter((step) => step.kind === 'send').map((step) => [step.id, step.sent, step.at])).toEqual([
      ['hello', 1, 0],
      ['best-of', 1, 0],
      ['feedback', 1, 0],
    ])
  })

  test('the job carries the contact, the data and the step tags', async () => {
    const series = defineSequence({
      id: 'tpl',
      steps: [send('welcome', { data: { ctaUrl: 'https://example.com/start' } })],
    })
    const t = setup([series])
    await t.runner.enroll('tpl', { address: READER, name: '독자', locale: 'ko' }, { brandName: '메일' })
    await t.at(START)
    const entries = await redis.xrange(`${t.prefix}:send:normal`, '-', '+')
    const fields = entries[0]?.[1] ?? []
    const job = JSON.parse(fields[fields.indexOf('job') + 1] as string)
    expect(job).toMatchObject({
      id: jobId('tpl', 'welcome'),
      type: 'sequence',
      template: 'welcome',
      locale: 'ko',
      to: [{ name: '독자', address: READER }],
      data: { name: '독자', brandName: '메일', ctaUrl: 'https://example.com/start' },
      tags: { sequence: 'tpl', step: 'welcome' },
    })
  })

  test('enroll is idempotent per (sequence, address); restart begins again with new job ids', async () => {
    const t = setup([welcome])
    await t.runner.enroll('welcome', READER)
    expect(await t.runner.enroll('welcome', ` ${READER.toUpperCase()} `)).toEqual({ created: false, status: 'active' })
    await t.at(START)
    expect(await t.runner.enroll('welcome', READER)).toEqual({ created: false, status: 'active' })
    expect(await t.enqueued()).toHaveLength(1)
    expect((await t.runner.stats('welcome')).enrolled).toBe(1)

    await t.runner.exit('welcome', READER)
    expect(await t.runner.enroll('welcome', READER)).toEqual({ created: false, status: 'exited' })
    expect(await t.runner.enroll('welcome', READER, {}, { restart: true })).toEqual({ created: true, status: 'active' })
    await t.at(START + 1)
    expect(await t.enqueued()).toEqual([jobId('welcome', 'hello'), jobId('welcome', 'hello', READER, 2)])
    expect(await t.runner.stats('welcome')).toMatchObject({ enrolled: 2, active: 1, exited: 0 })
  })

  test('waitFor: a signal resumes the enrolment; an event signalled before the step counts', async () => {
    const series = defineSequence({
      id: 'confirm',
      steps: [
        send(undefined, { id: 'ask', ...content }),
        waitFor('confirmed', { timeout: '2d', onTimeout: 'exit' }),
        send(undefined, { id: 'thanks', ...content }),
      ],
    })
    const t = setup([series])
    await t.runner.enroll('confirm', READER)
    await t.at(START)
    expect(await t.runner.get('confirm', READER)).toMatchObject({
      status: 'waiting',
      waitingFor: 'confirmed',
      nextAt: START + 2 * DAY,
      step: 'wait-confirmed',
    })
    expect((await t.runner.stats('confirm')).waiting).toBe(1)
    t.clock.now = START + DAY
    expect(await t.runner.signal(READER, 'other-event')).toEqual({ resumed: 0, exited: 0 })
    expect(await t.runner.signal(READER, 'confirmed')).toEqual({ resumed: 1, exited: 0 })
    await t.at(START + DAY)
    expect(await t.enqueued()).toEqual([jobId('confirm', 'ask'), jobId('confirm', 'thanks')])
    expect(await t.runner.get('confirm', READER)).toMatchObject({
      status: 'done',
      events: { confirmed: START + DAY, 'other-event': START + DAY },
    })

    // Signalled while the first email was still due: the wait passes at once.
    const early = 'early@example.com'
    await t.runner.enroll('confirm', early)
    await t.runner.signal(early, 'confirmed')
    await t.at(START + DAY + 1)
    expect(await t.runner.get('confirm', early)).toMatchObject({ status: 'done' })
  })

  test('waitFor timeouts: exit or continue', async () => {
    const strict = defineSequence({
      id: 'strict',
      steps: [waitFor('confirmed', { timeout: '2d', onTimeout: 'exit' }), send(undefined, { id: 'after', ...content })],
    })
    const lenient = defineSequence({
      id: 'lenient',
      steps: [waitFor('confirmed', { timeout: '1d' }), send(undefined, { id: 'after', ...content })],
    })
    const t = setup([strict, lenient])
    await t.runner.enroll('strict', READER)
    await t.runner.enroll('lenient', READER)
    await t.at(START)
    await t.at(START + DAY)
    expect(await t.enqueued()).toEqual([jobId('lenient', 'after')])
    await t.at(START + 2 * DAY)
    expect(await t.runner.get('strict', READER)).toMatchObject({ status: 'exited', exitReason: 'timeout' })
    expect(await t.enqueued()).toHaveLength(1)
    expect((await t.runner.stats('strict')).exitReasons).toEqual({ timeout: 1 })
  })

  test('branch: by data and by events', async () => {
    const series = defineSequence({
      id: 'fork',
      steps: [
        branch(
          (context) => context.data.plan === 'pro',
          [send(undefined, { id: 'pro', ...content })],
          [send(undefined, { id: 'free', ...content })],
        ),
        send(undefined, { id: 'last', ...content }),
      ],
    })
    const t = setup([series])
    await t.runner.enroll('fork', 'pro@example.com', { plan: 'pro' })
    await t.runner.enroll('fork', 'free@example.com', { plan: 'free' })
    await t.at(START)
    expect((await t.enqueued()).sort()).toEqual(
      [
        jobId('fork', 'pro', 'pro@example.com'),
        jobId('fork', 'last', 'pro@example.com'),
        jobId('fork', 'free', 'free@example.com'),
        jobId('fork', 'last', 'free@example.com'),
      ].sort(),
    )
    const stats = await t.runner.stats('fork')
    expect(stats.steps.map((step) => [step.id, step.sent])).toEqual([
      ['branch-1', 0],
      ['pro', 1],
      ['free', 1],
      ['last', 2],
    ])
  })

  test('delays respect the sending calendar in the contact time zone', async () => {
    const series = defineSequence({
      id: 'cal',
      steps: [delay('3d'), send(undefined, { id: 'later', ...content })],
    })
    const t = setup([series], { calendar: { timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '18:00' } })
    t.clock.now = START + 3 * DAY // Thursday 10:00 in Seoul
    await t.runner.enroll('cal', READER)
    await t.runner.enroll('cal', { address: 'ny@example.com', timeZone: 'America/New_York' })
    await t.runner.runOnce()
    // Sunday 10:00 in Seoul: held to Monday 09:00 Seoul.
    expect((await t.runner.get('cal', READER))?.nextAt).toBe(Date.UTC(2026, 0, 12, 0, 0))
    // Saturday 20:00 in New York (Sunday 10:00 Seoul): held to Monday 09:00 New York.
    expect((await t.runner.get('cal', 'ny@example.com'))?.nextAt).toBe(Date.UTC(2026, 0, 12, 14, 0))
  })
})

describe('crashes', () => {
  test('a run that died after enqueueing a step, before moving on: the next run finds the job and sends nothing twice', async () => {
    const t = setup([welcome], { leaseMs: 1000 })
    await t.runner.enroll('welcome', READER)
    // What the dead run did: took the enrolment under a lease and enqueued the step's email.
    await redis.zadd(`${t.prefix}:seq-due`, START + 1000, `${t.prefix}:seq:welcome:${addressHash(READER)}`)
    await t.queue.enqueue({
      id: jobId('welcome', 'hello'),
      type: 'sequence',
      to: READER,
      subject: 'Hello',
      text: 'Hello',
    })
    expect(await t.at(START + 999)).toMatchObject({ claimed: 0 })
    expect(await t.at(START + 1000)).toMatchObject({ claimed: 1, sent: 1 })
    expect(await t.enqueued()).toEqual([jobId('welcome', 'hello')])
    expect(await t.runner.get('welcome', READER)).toMatchObject({ step: 'best-of', lastJob: jobId('welcome', 'hello') })
    expect((await t.runner.stats('welcome')).steps[0]).toMatchObject({ id: 'hello', sent: 1 })
  })

  test('two runners on the same due enrolments: each step once', async () => {
    const t = setup([welcome])
    const other = createSequences({ queue: t.queue, sequences: [welcome], now: () => t.clock.now })
    for (let i = 0; i < 20; i++) await t.runner.enroll('welcome', `r${i}@example.com`)
    for (const at of [START, START + 3 * DAY, START + 7 * DAY]) {
      t.clock.now = at
      await Promise.all([t.runner.runOnce(), other.runOnce(), t.runner.runOnce(), other.runOnce()])
    }
    expect(new Set(await t.enqueued()).size).toBe(60)
    expect(await t.enqueued()).toHaveLength(60)
    expect(await t.runner.stats('welcome')).toMatchObject({ done: 20 })
  })
})

describe('exit paths', () => {
  test('exit() stops the series and cancels an email not sent yet', async () => {
    const t = setup([welcome])
    await t.runner.enroll('welcome', READER)
    await t.at(START)
    expect(await t.runner.exit('welcome', READER, 'changed-mind')).toBe(true)
    expect(await t.queue.getStatus(jobId('welcome', 'hello'))).toMatchObject({ status: 'cancelled' })
    expect(await t.runner.exit('welcome', READER)).toBe(false)
    expect(await t.runner.exit('welcome', 'nobody@example.com')).toBe(false)
    await t.at(START + 30 * DAY)
    expect(await t.enqueued()).toHaveLength(1)
    expect(await t.runner.get('welcome', READER)).toMatchObject({ status: 'exited', exitReason: 'changed-mind' })
    expect(await t.runner.stats('welcome')).toMatchObject({ active: 0, exited: 1, exitReasons: { 'changed-mind': 1 } })
    // Nothing left in the due set.
    expect(await redis.zcard(`${t.prefix}:seq-due`)).toBe(0)
  })

  test('a suppressed address (an unsubscribe, a bounce) exits at its next step and is never sent', async () => {
    const t = setup([welcome])
    await t.runner.enroll('welcome', READER)
    await t.at(START)
    await t.queue.suppression.add(READER, 'unsubscribed')
    await t.at(START + 3 * DAY)
    expect(await t.enqueued()).toEqual([jobId('welcome', 'hello')])
    expect(await t.runner.get('welcome', READER)).toMatchObject({ status: 'exited', exitReason: 'suppressed' })
    await t.at(START + 30 * DAY)
    expect(await t.enqueued()).toHaveLength(1)
  })

  test('a goal event ends the enrolment at once, in every sequence that has it', async () => {
    const goal = defineSequence({
      id: 'trial',
      goals: ['purchased'],
      steps: [send(undefined, { id: 'one', ...content }), delay('1d'), send(undefined, { id: 'two', ...content })],
    })
    const t = setup([goal, welcome])
    await t.runner.enroll('trial', READER)
    await t.runner.enroll('welcome', READER)
    await t.at(START)
    expect(await t.runner.signal(READER, 'purchased')).toEqual({ resumed: 0, exited: 1 })
    expect(await t.runner.get('trial', READER)).toMatchObject({ status: 'exited', exitReason: 'goal:purchased' })
    expect(await t.runner.get('welcome', READER)).toMatchObject({ status: 'active' })
    // Its email not sent yet (no worker here): cancelled.
    expect(await t.queue.getStatus(jobId('trial', 'one'))).toMatchObject({ status: 'cancelled' })
    expect(await t.queue.getStatus(jobId('welcome', 'hello'))).toMatchObject({ status: 'queued' })
    await t.at(START + DAY)
    expect(await t.enqueued()).not.toContain(jobId('trial', 'two'))
  })

  test('an email the queue refuses ends the enrolment as invalid, reported, without a retry loop', async () => {
    const errors: unknown[] = []
    const series = defineSequence({ id: 'bad', steps: [send(undefined, { id: 'x', job: () => ({}) })] })
    const t = setup([series], { onError: (error) => errors.push(error) })
    await t.runner.enroll('bad', READER)
    expect(await t.at(START)).toMatchObject({ exited: 1 })
    expect(await t.runner.get('bad', READER)).toMatchObject({ status: 'exited', exitReason: 'invalid' })
    expect(errors).toHaveLength(1)
  })
})

describe('versions', () => {
  test('a changed definition applies to the steps not yet due; each enrolment records its version', async () => {
    const v1 = welcome
    const t = setup([v1])
    await t.runner.enroll('welcome', READER)
    await t.at(START)
    expect(await t.runner.get('welcome', READER)).toMatchObject({ version: 1, step: 'best-of' })
    // A deploy: best-of now goes with a shorter follow-up, and feedback is replaced.
    const v2 = defineSequence({
      id: 'welcome',
      version: 2,
      steps: [
        send(undefined, { id: 'hello', ...content }),
        delay('3d'),
        send(undefined, { id: 'best-of', ...content }),
        delay('1d'),
        send(undefined, { id: 'survey', ...content }),
      ],
    })
    const next = createSequences({ queue: t.queue, sequences: [v2], now: () => t.clock.now })
    t.clock.now = START + 3 * DAY
    await next.runOnce()
    expect(await next.get('welcome', READER)).toMatchObject({ version: 2, startedVersion: 1, nextAt: START + 4 * DAY })
    t.clock.now = START + 4 * DAY
    await next.runOnce()
    expect(await t.enqueued()).toEqual(['hello', 'best-of', 'survey'].map((step) => jobId('welcome', step)))
  })
})

describe('start() and stop()', () => {
  test('the loop runs due steps on its own, and stop() ends it', async () => {
    const t = setup([welcome], { intervalMs: 10, now: Date.now })
    await t.runner.enroll('welcome', READER)
    t.runner.start()
    t.runner.start() // a second call changes nothing
    await waitUntil(async () => (await t.enqueued()).length === 1, 5000, 'the first email')
    await t.runner.stop()
    await t.runner.enroll('welcome', 'later@example.com')
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await t.enqueued()).toHaveLength(1)
  })

  test('Redis errors go to onError, and the loop keeps going with a backoff', async () => {
    // A port nothing listens on: every run fails.
    const queue = createEmailQueue({ redis: `redis://127.0.0.1:${await freePort()}`, prefix: uniquePrefix('seq') })
    queues.push(queue)
    const errors: MailstreamError[] = []
    const runner = createSequences({
      queue,
      sequences: [welcome],
      intervalMs: 10,
      onError: (error) => errors.push(error),
    })
    runner.start()
    await waitUntil(() => errors.length >= 2, 5000, 'two reports')
    const count = errors.length
    await new Promise((resolve) => setTimeout(resolve, 200))
    // Backing off (20, 40, 80, 160 ms...): a few more reports, not one per 10 ms.
    expect(errors.length - count).toBeLessThan(5)
    expect(errors[0]).toBeInstanceOf(MailstreamError)
    await runner.stop()
  })
})

describe('input', () => {
  test('bad options and calls throw E_CONFIG / E_VALIDATION naming the field, and write nothing', async () => {
    const t = setup([welcome])
    expect(() => createSequences({ queue: t.queue, sequences: [] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'sequences' }),
    )
    expect(() => createSequences({ queue: {} as EmailQueue, sequences: [welcome] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'queue' }),
    )
    expect(() => createSequences({ queue: t.queue, sequences: [welcome, welcome] })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG' }),
    )
    expect(() =>
      createSequences({
        queue: t.queue,
        sequences: [welcome],
        calendar: { timeZone: 'Mars/Base', from: '09:00', to: '18:00' },
      }),
    ).toThrow(expect.objectContaining({ code: 'E_CONFIG', field: 'calendar.timeZone' }))
    await expect(t.runner.enroll('welcome', 'not an address')).rejects.toMatchObject({ field: 'contact.address' })
    await expect(t.runner.enroll('welcome', { address: READER, timeZone: 'Nowhere' })).rejects.toMatchObject({
      field: 'contact.timeZone',
    })
    await expect(t.runner.enroll('welcome', READER, { big: 'x'.repeat(70_000) })).rejects.toMatchObject({
      field: 'data',
    })
    await expect(t.runner.enroll('nope', READER)).rejects.toMatchObject({ code: 'E_NOT_FOUND', field: 'sequenceId' })
    await expect(t.runner.signal(READER, 'has space')).rejects.toMatchObject({ field: 'event' })
    await expect(t.runner.exit('welcome', READER, 'two\nlines')).rejects.toMatchObject({ field: 'reason' })
    expect(await keysOf(redis, t.prefix)).toEqual([])
  })
})
