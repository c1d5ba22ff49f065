import { describe, expect, test } from 'vitest'
import { MailstreamError } from '../../src/errors.js'
import type { RenderedEmail } from '../../src/transport.js'
import {
  buildMessage,
  everyRecipientSuppressed,
  expectedRecipients,
  recipientCount,
  suppressedSet,
} from '../../src/worker/message.js'
import { makeJob, makeWork } from './work-fixtures.js'

const none: ReadonlySet<string> = new Set()
const defaultFrom = { address: 'noreply@example.com', name: 'Example' }

const newsletter: RenderedEmail = {
  subject: 'Our news',
  html: '<p>news</p>',
  text: 'news',
  headers: {
    'List-Unsubscribe': '<https://example.com/u/abc>, <mailto:unsubscribe@example.com?subject=abc>',
    'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
  },
}

describe('recipient counts', () => {
  test('expectedRecipients: the entry recipients less the suppressed ones, at least 1', () => {
    const job = makeJob({
      to: [{ address: 'a@example.com' }, { address: 'b@example.com' }],
      cc: [{ address: 'c@example.com' }],
    })
    expect(expectedRecipients(makeWork(job))).toBe(3)
    expect(expectedRecipients(makeWork(job, { suppressed: ['b@example.com'] }))).toBe(2)
    const all = ['a@example.com', 'b@example.com', 'c@example.com']
    expect(expectedRecipients(makeWork(job, { suppressed: all }))).toBe(1)
    const work = makeWork(job)
    expect(expectedRecipients({ ...work, delivery: { ...work.delivery, rcpt: '' } })).toBe(1)
  })

  test('recipientCount: every recipient of the message, bcc included', () => {
    const to = [{ address: 'a@example.com' }, { address: 'b@example.com' }]
    expect(recipientCount({ jobId: 'j', type: 't', priority: 'normal', subject: 's', to })).toBe(2)
    expect(
      recipientCount({
        jobId: 'j',
        type: 't',
        priority: 'normal',
        subject: 's',
        to,
        cc: [{ address: 'c@example.com' }],
        bcc: [{ address: 'd@example.com' }, { address: 'e@example.com' }],
      }),
    ).toBe(5)
  })

  test('suppressedSet: the suppressed addresses; one shared empty set for none', () => {
    expect([...suppressedSet(makeWork(makeJob(), { suppressed: ['x@example.com'] }))]).toEqual(['x@example.com'])
    const empty = suppressedSet(makeWork())
    expect(empty.size).toBe(0)
    expect(suppressedSet(makeWork())).toBe(empty)
  })
})

describe('everyRecipientSuppressed', () => {
  const job = makeJob({
    to: [{ address: 'Ada@Example.com' }],
    cc: [{ address: 'bob@example.com' }],
    bcc: [{ address: 'cy@example.com' }],
  })

  test('true only when to, cc and bcc are all suppressed, addresses compared lower-case', () => {
    expect(everyRecipientSuppressed(job, new Set(['ada@example.com', 'bob@example.com', 'cy@example.com']))).toBe(true)
    expect(everyRecipientSuppressed(job, new Set(['ada@example.com', 'bob@example.com']))).toBe(false)
    expect(everyRecipientSuppressed(job, new Set(['bob@example.com', 'cy@example.com']))).toBe(false)
  })

  test('false with nothing suppressed', () => {
    expect(everyRecipientSuppressed(job, none)).toBe(false)
  })
})

describe('buildMessage', () => {
  test("a plain job: its own fields, and no key for what it doesn't have", () => {
    const job = makeJob()
    expect(buildMessage(job, none, undefined)).toStrictEqual({
      jobId: 'job-1',
      type: 'welcome',
      priority: 'normal',
      to: [{ address: 'ada@example.com', name: 'Ada' }],
      subject: 'Hello',
      text: 'Hi Ada',
    })
  })

  test('every optional field of the job is carried over', () => {
    const job = makeJob({
      from: { address: 'team@example.com' },
      cc: [{ address: 'cc@example.com' }],
      bcc: [{ address: 'bcc@example.com' }],
      replyTo: [{ address: 'reply@example.com' }],
      html: '<p>Hi</p>',
      headers: { 'X-Campaign': 'spring' },
      attachments: [{ filename: 'a.txt', content: 'aGk=', contentType: 'text/plain' }],
      tags: { campaign: 'spring' },
      batchId: 'batch-1',
      priority: 'high',
    })
    expect(buildMessage(job, none, defaultFrom)).toMatchObject({
      from: { address: 'team@example.com' },
      cc: [{ address: 'cc@example.com' }],
      bcc: [{ address: 'bcc@example.com' }],
      replyTo: [{ address: 'reply@example.com' }],
      html: '<p>Hi</p>',
      text: 'Hi Ada',
      headers: { 'X-Campaign': 'spring' },
      attachments: [{ filename: 'a.txt', content: 'aGk=', contentType: 'text/plain' }],
      tags: { campaign: 'spring' },
      batchId: 'batch-1',
      priority: 'high',
    })
  })

  test("the worker's default sender fills in for a job without from", () => {
    expect(buildMessage(makeJob(), none, defaultFrom).from).toEqual(defaultFrom)
    const own = { address: 'own@example.com' }
    expect(buildMessage(makeJob({ from: own }), none, defaultFrom).from).toEqual(own)
  })

  test('no subject from the job or the render: E_TEMPLATE naming the subject', () => {
    const job = makeJob({ subject: undefined, template: 'welcome' })
    let thrown: unknown
    try {
      buildMessage(job, none, defaultFrom)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(MailstreamError)
    expect(thrown).toMatchObject({ code: 'E_TEMPLATE', field: 'subject' })
    expect((thrown as Error).message).toContain('job-1')
    expect(() => buildMessage(job, none, defaultFrom, { subject: '' })).toThrow(/no subject/)
  })

  test("a render gives subject, html and text; the job's own subject wins", () => {
    const job = makeJob({ subject: undefined, text: undefined, template: 'news' })
    const message = buildMessage(job, none, defaultFrom, newsletter)
    expect(message).toMatchObject({ subject: 'Our news', html: '<p>news</p>', text: 'news' })
    expect(buildMessage(makeJob({ subject: 'Mine', template: 'news' }), none, defaultFrom, newsletter).subject).toBe(
      'Mine',
    )
  })

  test("the render's html and text replace the job's, even when the render has none", () => {
    const job = makeJob({ html: '<p>job</p>', text: 'job', template: 'news' })
    const message = buildMessage(job, none, defaultFrom, { subject: 'Only text', text: 'rendered' })
    expect(message.text).toBe('rendered')
    expect(message).not.toHaveProperty('html')
  })

  test('the List-Unsubscribe headers of a render reach the message', () => {
    const message = buildMessage(makeJob({ template: 'news' }), none, defaultFrom, newsletter)
    expect(message.headers).toEqual(newsletter.headers)
  })

  test("the job's headers are added to the render's, and win on the same name", () => {
    const job = makeJob({
      template: 'news',
      headers: { 'X-Campaign': 'spring', 'List-Unsubscribe': '<https://example.com/own>' },
    })
    const message = buildMessage(job, none, defaultFrom, newsletter)
    expect(message.headers).toEqual({
      'List-Unsubscribe': '<https://example.com/own>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
      'X-Campaign': 'spring',
    })
    // The render's headers object is not changed by the merge.
    expect(newsletter.headers?.['List-Unsubscribe']).toMatch(/^<https:\/\/example.com\/u\/abc>/)
  })

  // Header names are case-insensitive (RFC 5322) and job.ts accepts any case: merged by exact key,
  // the message would carry both, and SES (one header per entry) would send two List-Unsubscribe.
  test("the job's header wins over the render's whatever the case of its name", () => {
    const job = makeJob({ template: 'news', headers: { 'list-unsubscribe': '<https://example.com/own>' } })
    const headers = buildMessage(job, none, defaultFrom, newsletter).headers ?? {}
    const named = Object.keys(headers).filter((name) => name.toLowerCase() === 'list-unsubscribe')
    expect(named).toHaveLength(1)
    expect(headers[named[0] as string]).toBe('<https://example.com/own>')
  })

  test('suppressed recipients are left out of to, cc and bcc, compared lower-case', () => {
    const job = makeJob({
      to: [{ address: 'Ada@Example.com' }, { address: 'bob@example.com' }],
      cc: [{ address: 'CY@example.com' }],
      bcc: [{ address: 'dee@example.com' }, { address: 'eve@example.com' }],
    })
    const suppressed = new Set(['ada@example.com', 'cy@example.com', 'eve@example.com'])
    const message = buildMessage(job, suppressed, defaultFrom)
    expect(message.to).toEqual([{ address: 'bob@example.com' }])
    expect(message).not.toHaveProperty('cc')
    expect(message.bcc).toEqual([{ address: 'dee@example.com' }])
    expect(recipientCount(message)).toBe(2)
    // The job itself keeps every recipient.
    expect(job.to).toHaveLength(2)
    expect(job.cc).toHaveLength(1)
  })

  test('an empty cc or bcc on the job gives no cc or bcc', () => {
    const message = buildMessage(makeJob({ cc: [], bcc: [] }), none, defaultFrom)
    expect(message).not.toHaveProperty('cc')
    expect(message).not.toHaveProperty('bcc')
  })
})
