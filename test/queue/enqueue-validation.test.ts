// validateJob checks jobs of the common shape by hand and everything else with its schema: both
// paths must give the same job. A field set to undefined (`sendAt` here) sends a job through the
// schema path while meaning the same job, so each input is validated both ways and compared.
import { describe, expect, test } from 'vitest'
import { MailstreamError } from '../../src/index.js'
import { validateJob } from '../../src/job.js'

const NOW = 1_700_000_000_000

const viaSchema = (input: Record<string, unknown>) => validateJob({ ...input, sendAt: undefined }, NOW)
const outcome = (run: () => unknown) => {
  try {
    return { ok: run() }
  } catch (error) {
    const { code, field, message } = error as MailstreamError
    return { error: { code, field, message } }
  }
}

const base = { id: 'j-1', type: 'welcome', to: 'a@example.com', subject: 'Hi', text: 'Hello' }
const shapes: Record<string, unknown>[] = [
  base,
  { ...base, to: 'Kim <kim@example.com>' },
  { ...base, to: { name: ' Kim ', address: 'kim@example.com' } },
  { ...base, to: ['a@example.com', 'B <b@example.com>'], cc: 'c@example.com', bcc: ['d@example.com'] },
  { ...base, to: 'user@도메인.한국', from: 'News <news@example.com>', replyTo: 'r@example.com' },
  { ...base, html: '<p>x</p>', text: undefined },
  {
    id: 'j-2',
    type: 'verification-code',
    to: 'a@example.com',
    template: 'verification-code',
    data: { code: '123456' },
  },
  { ...base, data: { nested: { list: [1, 2] }, n: 1 }, locale: 'en-US', priority: 'high', maxAttempts: 5 },
  { ...base, delayMs: 60_000, idempotencyKey: 'signup:42', batchId: 'b-1' },
  { ...base, delayMs: 0 },
  // Each of these is wrong in one field: both paths must refuse it with the schema's error.
  { ...base, to: 'not an address' },
  { ...base, to: [] },
  { ...base, cc: ['a@example.com', 'bad'] },
  { ...base, from: ['a@example.com'] },
  { ...base, subject: '' },
  { ...base, subject: 'line\r\nBcc: x@example.com' },
  { ...base, type: '-bad' },
  { ...base, id: 'batch:AAAAAAAAAAAAAAAA' },
  { ...base, id: 'has space' },
  { ...base, template: 'welcome' },
  { ...base, text: undefined },
  { ...base, subject: undefined },
  { ...base, priority: 'urgent' },
  { ...base, maxAttempts: 0 },
  { ...base, maxAttempts: 2.5 },
  { ...base, delayMs: -1 },
  { ...base, delayMs: Number.NaN },
  { ...base, idempotencyKey: '' },
  { ...base, idempotencyKey: 'a\nb' },
  { ...base, locale: 'english!' },
  { ...base, data: [1, 2] },
  { ...base, html: 42 },
  { ...base, unknownField: 1 },
]

describe('validateJob: the common-shape path and the schema path agree', () => {
  test.each(shapes.map((shape, index) => [index, shape] as const))('shape %i', (_, shape) => {
    const direct = outcome(() => validateJob(shape, NOW))
    const schema = outcome(() => viaSchema(shape))
    expect(direct).toEqual(schema)
    if ('ok' in direct)
      expect((direct.ok as { payload: string }).payload).toBe((schema.ok as { payload: string }).payload)
  })

  test('a job that is not a plain object goes through the schema', () => {
    class Job {
      type = 'welcome'
      to = 'a@example.com'
      subject = 'Hi'
      text = 'Hello'
    }
    expect(() => validateJob(new Job(), NOW)).not.toThrow()
    const hidden = { ...base }
    Object.defineProperty(hidden, 'sendAt', { value: 'not a date', enumerable: false })
    expect(() => validateJob(hidden, NOW)).toThrow(MailstreamError)
  })
})
