import { describe, expect, test } from 'vitest'
import { batchJobId, formatAddress, MailstreamError, parseAddress, TransportError } from '../src/index.js'
import { isValidEmail, MAX_PAYLOAD_BYTES, validateJob } from '../src/job.js'

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

describe('control characters', () => {
  const controls = ['\u0000', '\u0007', '\u001b', '\u000b', '\u007f']

  test.each(controls.map((char) => [JSON.stringify(char), char]))(
    '%s is refused where text reaches a header',
    (_name, char) => {
      const cases: [string, unknown][] = [
        ['subject', { ...base, subject: `Hi${char}there` }],
        ['headers.X-Tag', { ...base, headers: { 'X-Tag': `a${char}b` } }],
        [
          'attachments.0.contentType',
          {
            ...base,
            attachments: [{ filename: 'a.txt', content: 'x', contentType: `text/plain; charset=utf-8${char}` }],
          },
        ],
        [
          'attachments.0.cid',
          { ...base, attachments: [{ filename: 'a.png', content: 'x', cid: `logo${char}@example.com` }] },
        ],
        [
          'attachments.1.contentType',
          {
            ...base,
            attachments: [
              { filename: 'a.txt', content: 'x' },
              { filename: 'b', content: 'y', contentType: `text${char}/plain` },
            ],
          },
        ],
      ]
      for (const [field, input] of cases) {
        const error = rejection(input)
        expect(error.code).toBe('E_VALIDATION')
        expect(error.field).toBe(field)
        expect(error.message).toContain(`${field}: may not contain control characters`)
        // The value is shown escaped: no raw control character reaches a log line.
        expect(error.message).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)
      }
    },
  )

  test('a tab is allowed in the subject and in header values', () => {
    const { job } = validateJob({ ...base, subject: 'a\tb', headers: { 'X-Tag': 'c\td' } })
    expect(job.subject).toBe('a\tb')
    expect(job.headers).toEqual({ 'X-Tag': 'c\td' })
  })
})

describe('address rules', () => {
  test.each([
    '.lead@example.com',
    'trail.@example.com',
    'dou..ble@example.com',
    'user@127.0.0.1',
    'user@[127.0.0.1]',
    'user@example.123',
    'user@-example.com',
    'user@example-.com',
    'user@exa_mple.com',
    'user@example.com.',
    'user@.example.com',
    'user@example..com',
    '"quoted"@example.com',
    '김@example.com',
    'user@xn--zz.com',
    'user@XN--ZZ.com',
    `${'a'.repeat(65)}@example.com`,
    `user@${'a'.repeat(64)}.com`,
  ])('refuses %s', (address) => {
    expect(isValidEmail(address)).toBe(false)
    expect(parseAddress(address)).toBeNull()
    expect(parseAddress(`Name <${address}>`)).toBeNull()
    expect(parseAddress({ address })).toBeNull()
    expect(rejection({ ...base, to: address }).field).toBe('to')
  })

  test.each([
    'a@b.co',
    "o'brien+tag@example.co.kr",
    'first.last@sub-domain.example.com',
    'x@1example.com',
    'user@xn--hq1bm8jm9l.xn--3e0b707e',
    'xn--local@example.com',
    `${'a'.repeat(64)}@example.com`,
  ])('accepts %s', (address) => {
    expect(isValidEmail(address)).toBe(true)
    expect(parseAddress(address)).toEqual({ address })
  })

  test('an internationalised domain is stored as punycode, everywhere an address is read', () => {
    expect(parseAddress('user@도메인.한국')).toEqual({ address: 'user@xn--hq1bm8jm9l.xn--3e0b707e' })
    expect(parseAddress('김철수 <kim@도메인.한국>')).toEqual({
      name: '김철수',
      address: 'kim@xn--hq1bm8jm9l.xn--3e0b707e',
    })
    expect(parseAddress({ name: 'Kim', address: ' kim@도메인.한국 ' })).toEqual({
      name: 'Kim',
      address: 'kim@xn--hq1bm8jm9l.xn--3e0b707e',
    })
    const { job } = validateJob({
      ...base,
      to: 'user@도메인.한국',
      cc: ['a@example.com', 'b@도메인.한국'],
      bcc: { address: 'c@도메인.한국' },
      from: 'Vality <news@도메인.한국>',
      replyTo: 'reply@도메인.한국',
    })
    expect(job.to).toEqual([{ address: 'user@xn--hq1bm8jm9l.xn--3e0b707e' }])
    expect(job.cc).toEqual([{ address: 'a@example.com' }, { address: 'b@xn--hq1bm8jm9l.xn--3e0b707e' }])
    expect(job.bcc).toEqual([{ address: 'c@xn--hq1bm8jm9l.xn--3e0b707e' }])
    expect(job.from).toEqual({ name: 'Vality', address: 'news@xn--hq1bm8jm9l.xn--3e0b707e' })
    expect(job.replyTo).toEqual([{ address: 'reply@xn--hq1bm8jm9l.xn--3e0b707e' }])
    // An ASCII domain is kept as it was given.
    expect(parseAddress('Kim@Example.COM')).toEqual({ address: 'Kim@Example.COM' })
  })

  test.each([
    ['to', { to: 'kim@example' }, "to: not an email address: 'kim@example'"],
    ['to', { to: '.lead@example.com' }, "to: not an email address: '.lead@example.com'"],
    ['cc.1', { cc: ['a@example.com', 'dou..ble@example.com'] }, "cc.1: not an email address: 'dou..ble@example.com'"],
    ['bcc.0', { bcc: ['user@127.0.0.1'] }, "bcc.0: not an email address: 'user@127.0.0.1'"],
    ['from', { from: 'Evil <trail.@example.com>' }, "from: not an email address: 'Evil <trail.@example.com>'"],
    ['replyTo', { replyTo: { address: 'nobody' } }, "replyTo: not an email address: 'nobody'"],
    [
      'to',
      { to: 'a@example.com\r\nBcc: victim@example.com' },
      "to: not an email address: 'a@example.com\\r\\nBcc: victim@example.com'",
    ],
  ])('says what is wrong with %s and shows the value', (field, fields, text) => {
    const error = rejection({ ...base, ...fields })
    expect(error.field).toBe(field)
    expect(error.message).toContain(text)
    expect(error.message).not.toContain('Invalid input')
  })

  test('a long bad address is shown truncated', () => {
    const long = `${'x'.repeat(5000)}@example`
    const error = rejection({ ...base, to: long })
    expect(error.message).toContain("to: not an email address: 'xxxx")
    expect(error.message.length).toBeLessThan(400)
  })

  test('an empty list, a missing to and a non-address value say so', () => {
    expect(rejection({ ...base, to: [] }).message).toContain('to: ')
    expect(rejection({ ...base, to: undefined }).message).toContain('to: is required')
    expect(rejection({ ...base, to: 42 }).message).toContain('to: not an email address: 42')
  })
})

describe('reserved headers', () => {
  test.each([
    'X-SES-CONFIGURATION-SET',
    'x-ses-source-arn',
    'X-SES-MESSAGE-TAGS',
    'Resent-Bcc',
    'resent-to',
    'Resent-From',
    'DKIM-Signature',
    'dkim-signature',
    'Content-Disposition',
    'Bcc',
    'Content-Type',
  ])('refuses %s, naming it', (name) => {
    const error = rejection({ ...base, headers: { 'X-Fine': 'ok', [name]: 'x' } })
    expect(error.code).toBe('E_VALIDATION')
    expect(error.field).toBe(`headers.${name}`)
    expect(error.message).toContain(`headers.${name}: `)
    expect(error.message).not.toContain('Invalid key')
  })

  test('other custom headers pass', () => {
    const headers = {
      'X-Campaign': 'spring',
      'X-Sesame': 'open',
      'Resentment-Level': 'low',
      'List-Id': '<news.example.com>',
    }
    expect(validateJob({ ...base, headers }).job.headers).toEqual(headers)
  })
})

describe('batch job ids are reserved', () => {
  test('a caller id in the form batchJobId makes is refused', () => {
    const error = rejection({ ...base, id: batchJobId('issue-42', 'victim@example.com') })
    expect(error.code).toBe('E_VALIDATION')
    expect(error.field).toBe('id')
    expect(error.message).toContain('id: ')
    expect(rejection({ ...base, id: 'a:b:AAAAAAAAAAAAAAAA' }).field).toBe('id')
    for (const batchId of ['a', 'issue:2026.05', 'x'.repeat(111)]) {
      for (let i = 0; i < 50; i++)
        expect(rejection({ ...base, id: batchJobId(batchId, `r${i}@example.com`) }).field).toBe('id')
    }
  })

  test('ids that only look near it are still free', () => {
    for (const id of [
      'order-1',
      'custom:5.x_y',
      'issue-42:AAAAAAAAAAAAAAA',
      'issue-42:AAAAAAAAAAAAAAAAA',
      'issue-42.AAAAAAAAAAAAAAAA',
    ]) {
      expect(validateJob({ ...base, id }).job.id).toBe(id)
    }
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
