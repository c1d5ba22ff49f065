import { describe, expect, test } from 'vitest'
import { createSendingCalendar } from '../../src/calendar.js'
import { type Position, plan } from '../../src/sequences/machine.js'
import {
  branch,
  defineSequence,
  delay,
  parseDuration,
  type StepContext,
  send,
  waitFor,
} from '../../src/sequences/steps.js'

const DAY = 86_400_000
const NOW = Date.UTC(2026, 0, 5, 1, 0) // Monday 10:00 in Seoul
const context = (overrides: Partial<StepContext> = {}): StepContext => ({
  sequenceId: 'welcome',
  address: 'reader@example.com',
  data: {},
  enrolledAt: NOW,
  events: {},
  now: NOW,
  ...overrides,
})
const at = (step: string, overrides: Partial<Position> = {}): Position => ({
  step,
  index: 0,
  version: 1,
  waiting: false,
  dueAt: NOW,
  ...overrides,
})
const none = (ms: number) => ms

describe('defineSequence', () => {
  test('flattens branches and links each step to the one that follows', () => {
    const definition = defineSequence({
      id: 'onboarding',
      steps: [
        send('welcome'),
        branch((c) => c.data.plan === 'pro', [send('pro-tips'), delay('1d')], [send('upgrade')]),
        send('newsletter-issue'),
      ],
    })
    expect(definition.nodes.map((node) => [node.id, node.next])).toEqual([
      ['welcome', 'branch-1'],
      ['branch-1', 'newsletter-issue'],
      ['pro-tips', 'delay-1'],
      ['delay-1', 'newsletter-issue'],
      ['upgrade', 'newsletter-issue'],
      ['newsletter-issue', ''],
    ])
    expect(definition.node('branch-1')).toMatchObject({ whenTrue: 'pro-tips', whenFalse: 'upgrade' })
  })

  test('an empty branch side goes straight on', () => {
    const definition = defineSequence({ id: 's', steps: [branch(() => true, []), send('welcome')] })
    expect(definition.node('branch-1')).toMatchObject({ whenTrue: 'welcome', whenFalse: 'welcome' })
  })

  test.each([
    [{ id: 'bad id', steps: [send('welcome')] }, 'id'],
    [{ id: 's', steps: [] }, 'steps'],
    [{ id: 's', steps: [send('welcome'), send('welcome')] }, 'steps[1].id'],
    [
      { id: 's', steps: [send('welcome'), branch(() => true, [send('x', { id: 'welcome' })])] },
      'steps[1].whenTrue[0].id',
    ],
    [{ id: 's', steps: [send('../x')] }, 'steps[0].template'],
    [{ id: 's', steps: [send(undefined)] }, 'steps[0].template'],
    [{ id: 's', steps: [send('welcome')], goals: ['no spaces'] }, 'goals[0]'],
    [{ id: 's', steps: [send('welcome')], version: 0 }, 'version'],
    [{ id: 's', steps: [{ kind: 'nope' }] }, 'steps[0]'],
  ])('refuses %j with E_CONFIG naming %s', (input, field) => {
    expect(() => defineSequence(input as never)).toThrow(expect.objectContaining({ code: 'E_CONFIG', field }))
  })

  test('durations', () => {
    expect(parseDuration('3d', 'd')).toBe(3 * DAY)
    expect(parseDuration('1.5h', 'd')).toBe(5_400_000)
    expect(parseDuration('250ms', 'd')).toBe(250)
    expect(parseDuration(42, 'd')).toBe(42)
    for (const bad of ['3 days', '-1d', '400d', '', null]) {
      expect(() => parseDuration(bad, 'delay')).toThrow(expect.objectContaining({ code: 'E_CONFIG', field: 'delay' }))
    }
    expect(() => waitFor('confirmed', { timeout: 'soon' })).toThrow(
      expect.objectContaining({ field: 'waitFor.timeout' }),
    )
  })
})

describe('plan', () => {
  const series = defineSequence({
    id: 'welcome',
    steps: [
      send('welcome'),
      delay('3d'),
      send('best-of', { id: 'best-of' }),
      waitFor('confirmed', { timeout: '2d', onTimeout: 'exit' }),
      branch(
        (c) => c.events.clicked !== undefined,
        [send('thanks', { id: 'thanks' })],
        [send('nudge', { id: 'nudge' })],
      ),
    ],
  })

  test('a send stops the plan at it', () => {
    expect(plan(series, at('welcome'), context(), none)).toMatchObject({ kind: 'send', node: { id: 'welcome' } })
  })

  test('a delay sleeps until its end, with the pointer on the step after it', () => {
    expect(plan(series, at('delay-1'), context(), none)).toEqual({ kind: 'sleep', step: 'best-of', at: NOW + 3 * DAY })
  })

  test('a delay ending outside the calendar is held to its next opening', () => {
    const calendar = createSendingCalendar({ timeZone: 'Asia/Seoul', days: 'mon-fri', from: '09:00', to: '18:00' })
    // Thursday 10:00 + 3 days = Sunday 10:00 in Seoul: held to Monday 09:00.
    const thursday = NOW + 3 * DAY
    const action = plan(series, at('delay-1'), context({ now: thursday }), calendar.nextOpen)
    expect(action).toEqual({ kind: 'sleep', step: 'best-of', at: Date.UTC(2026, 0, 12, 0, 0) })
  })

  test('a waitFor waits for its timeout, and goes on at once when the event came already', () => {
    expect(plan(series, at('wait-confirmed'), context(), none)).toEqual({
      kind: 'wait',
      step: 'wait-confirmed',
      event: 'confirmed',
      until: NOW + 2 * DAY,
    })
    const confirmed = context({ events: { confirmed: NOW - 1 } })
    expect(plan(series, at('wait-confirmed', { waiting: true }), confirmed, none)).toMatchObject({
      kind: 'send',
      node: { id: 'nudge' },
    })
  })

  test('a waitFor that timed out exits or continues as it says', () => {
    const timedOut = at('wait-confirmed', { waiting: true, dueAt: NOW })
    expect(plan(series, timedOut, context(), none)).toEqual({ kind: 'exit', step: 'wait-confirmed', reason: 'timeout' })
    const lenient = defineSequence({ id: 'l', steps: [waitFor('confirmed', { timeout: '1h' }), send('welcome')] })
    expect(plan(lenient, timedOut, context(), none)).toMatchObject({ kind: 'send', node: { id: 'welcome' } })
    // Woken early (another runner's clock): it keeps waiting until its timeout.
    expect(plan(series, at('wait-confirmed', { waiting: true, dueAt: NOW + 5 }), context(), none)).toMatchObject({
      kind: 'wait',
      until: NOW + 5,
    })
  })

  test('a branch follows its condition', () => {
    expect(plan(series, at('branch-1'), context({ events: { clicked: NOW } }), none)).toMatchObject({
      node: { id: 'thanks' },
    })
    expect(plan(series, at('branch-1'), context(), none)).toMatchObject({ node: { id: 'nudge' } })
  })

  test('past the last step the sequence is done', () => {
    expect(plan(series, at(''), context(), none)).toEqual({ kind: 'done' })
    expect(plan(series, at(series.node('thanks')?.next ?? 'x'), context(), none)).toEqual({ kind: 'done' })
  })

  test('a step removed by a new version: the enrolment goes on at the step now at its old index', () => {
    const v2 = defineSequence({ id: 'welcome', version: 2, steps: [send('welcome'), delay('1d'), send('feedback')] })
    expect(plan(v2, at('best-of', { index: 2 }), context(), none)).toMatchObject({ node: { id: 'feedback' } })
    expect(plan(v2, at('gone', { index: 9 }), context(), none)).toEqual({ kind: 'done' })
  })
})
