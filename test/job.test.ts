import { describe, expect, test } from 'vitest'
import { formatAddress, MailstreamError, parseAddress, TransportError } from '../src/index.js'
import { MAX_PAYLOAD_BYTES, validateJob } from '../src/job.js'

const base = {
  type: 'welcome',
  to: 'reader@example.com',
  subject: 'Hello',
  text: 'Hi',
}

function rejection(input: unknown): MailstreamError {
  try {
    validateJob(input)
  } catch (error) {
    expect(error).toBeInstanceOf(MailstreamError)
    return error as MailstreamError
  }
  throw new Error('expected the job to be rejected')
}

describe('validateJob', () => {
  test('normalises a minimal job', () => {
    const { job, dueAt } = validateJob(base, 1000)
    expect(job).toMatchObject({
      type: 'welcome',
      to: [{ address: 'reader@example.com' }],
      priority: 'normal',
      maxAttempts: 3,
      createdAt: 1000,
    })
    expect(job.id).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(dueAt).toBe(0)
  })

  test('parses named addresses and lists', () => {
    const { job } = validateJob({
      ...base,
      to: ['김철수 <kim@example.kr>', { name: 'Lee', address: 'lee@example.kr' }],
    })
    expect(job.to).toEqual([
      { name: '김철수', address: 'kim@example.kr' },
      { name: 'Lee', address: 'lee@example.kr' },
    ])
  })

  test.each([
    ['to', { ...base, to: 'not-an-address' }],
    ['to', { ...base, to: 'user@localhost' }],
    ['to', { ...base, to: 'a@example.com\r\nBcc: victim@example.com' }],
    ['to', { ...base, to: [] }],
    ['cc', { ...base, cc: 'bad address@example.com' }],
    ['from', { ...base, from: 'Evil\n <x@example.com>' }],
    ['subject', { ...base, subject: 'Hello\r\nBcc: victim@example.com' }],
    ['subject', { ...base, subject: 'line\nbreak' }],
    ['headers.X-Campaign', { ...base, headers: { 'X-Campaign': 'a\r\nBcc: victim@example.com' } }],
    ['headers.Bad:Name', { ...base, headers: { 'Bad:Name': 'x' } }],
    ['headers.Bcc', { ...base, headers: { Bcc: 'victim@example.com' } }],
    ['priority', { ...base, priority: 'urgent' }],
    ['delayMs', { ...base, delayMs: -1 }],
    ['delayMs', { ...base, delayMs: 1.5 }],
    ['sendAt', { ...base, sendAt: 'tomorrow' }],
    ['sendAt', { ...base, delayMs: 10, sendAt: Date.now() + 10 }],
    ['maxAttempts', { ...base, maxAttempts: 0 }],
    ['type', { ...base, type: '' }],
    ['type', { ...base, type: undefined }],
    ['html', { type: 'welcome', to: 'reader@example.com', subject: 'No body' }],
    ['subject', { type: 'welcome', to: 'reader@example.com', text: 'No subject' }],
    ['template', { ...base, template: 'welcome' }],
    ['id', { ...base, id: 'has space' }],
    ['batchId', { ...base, batchId: 'a/b' }],
    ['tags.job_id', { ...base, tags: { job_id: 'x' } }],
    ['tags.batch_id', { ...base, tags: { batch_id: 'x' } }],
    ['attachments.0.filename', { ...base, attachments: [{ filename: '', content: 'x' }] }],
    ['extra', { ...base, extra: true }],
  ])('rejects a bad %s', (field, input) => {
    const error = rejection(input)
    expect(error.code).toBe('E_VALIDATION')
    expect(error.field).toBe(field)
    expect(error.message).toContain(field.split('.')[0])
  })

  test('rejects a payload over 1 MB, naming it', () => {
    const error = rejection({ ...base, html: 'x'.repeat(MAX_PAYLOAD_BYTES) })
    expect(error.code).toBe('E_VALIDATION')
    expect(error.field).toBe('payload')
  })

  test('rejects more than 50 recipients', () => {
    const to = Array.from({ length: 51 }, (_, i) => `r${i}@example.com`)
    expect(rejection({ ...base, to }).field).toBe('to')
  })

  test('turns delayMs and sendAt into a due time', () => {
    expect(validateJob({ ...base, delayMs: 500 }, 1000).dueAt).toBe(1500)
    expect(validateJob({ ...base, sendAt: new Date(5000) }, 1000).dueAt).toBe(5000)
    expect(validateJob({ ...base, sendAt: '1970-01-01T00:00:06Z' }, 1000).dueAt).toBe(6000)
    expect(validateJob({ ...base, sendAt: 500 }, 1000).dueAt).toBe(0) // in the past: now
  })

  test('stores attachments as base64', () => {
    const { job } = validateJob({
      ...base,
      attachments: [
        { filename: 'a.txt', content: '안녕' },
        { filename: 'b.bin', content: new Uint8Array([1, 2, 3]) },
        { filename: 'c.txt', content: 'aGk=', encoding: 'base64' },
      ],
    })
    expect(job.attachments?.map((attachment) => Buffer.from(attachment.content, 'base64'))).toEqual([
      Buffer.from('안녕'),
      Buffer.from([1, 2, 3]),
      Buffer.from('hi'),
    ])
  })
})

describe('addresses', () => {
  test('round-trip through formatAddress', () => {
    expect(formatAddress({ address: 'a@example.com' })).toBe('a@example.com')
    expect(formatAddress({ name: 'Mail Stream', address: 'a@example.com' })).toBe('Mail Stream <a@example.com>')
    expect(formatAddress({ name: 'Kim, "CEO"', address: 'a@example.com' })).toBe('"Kim, \\"CEO\\"" <a@example.com>')
    expect(parseAddress(formatAddress({ name: 'Kim, "CEO"', address: 'a@example.com' }))).toEqual({
      name: 'Kim, "CEO"',
      address: 'a@example.com',
    })
  })
})

describe('errors', () => {
  test('instanceof works by brand, so copies from another bundle still match', () => {
    const error = new TransportError('nope', { retry: 'later' })
    expect(error).toBeInstanceOf(MailstreamError)
    expect(error).toBeInstanceOf(TransportError)
    expect(error.message).toBe('[mailstream] nope')
    const foreign = Object.assign(new Error('x'), {
      [Symbol.for('mailstream.error')]: true,
      name: 'TransportError',
    })
    expect(foreign).toBeInstanceOf(TransportError)
    expect(new Error('plain')).not.toBeInstanceOf(MailstreamError)
    expect(new MailstreamError('E_CONFIG', 'x')).not.toBeInstanceOf(TransportError)
  })
})
