import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, test } from 'vitest'
import {
  batchJobId,
  createEmailQueue,
  type EmailJobInput,
  type EmailQueue,
  MailstreamError,
  type RedisClient,
} from '../src/index.js'
import { checkClusterPrefix, clusterHashTag } from '../src/options.js'
import { createSesTransport } from '../src/transports/ses.js'
import { createSmtpTransport } from '../src/transports/smtp.js'
import { harness, testJob } from './helpers/queue.js'
import { connect, keysOf, uniquePrefix, waitUntil } from './helpers/redis.js'
import { findRedisServer, freePort } from './helpers/redis-server.js'
import { startSesLocal } from './helpers/ses-local.js'
import { startSmtpLocal } from './helpers/smtp-local.js'

const redis = connect()
const queues: EmailQueue[] = []
afterAll(async () => {
  for (const queue of queues) await queue.close()
})

function newQueue(prefix = uniquePrefix('v')): EmailQueue {
  const queue = createEmailQueue({ redis, prefix })
  queues.push(queue)
  return queue
}

const job = testJob
const IDN = 'xn--hq1bm8jm9l.xn--3e0b707e'

async function refusal(queue: EmailQueue, write: () => Promise<unknown>): Promise<MailstreamError> {
  const error = await write().then(
    () => {
      throw new Error('expected the enqueue to be refused')
    },
    (caught: unknown) => caught,
  )
  expect(error).toBeInstanceOf(MailstreamError)
  expect(await keysOf(redis, queue.prefix)).toEqual([])
  return error as MailstreamError
}

describe('enqueue refuses, and writes nothing', () => {
  const victim = batchJobId('issue-42', 'victim@example.com')
  const cases: [string, string, string, EmailJobInput][] = [
    ['NUL in the subject', 'subject', 'subject: may not contain control characters', job({ subject: 'Hi\u0000' })],
    ['ESC in the subject', 'subject', "'\\u001b[31mRed'", job({ subject: '\u001b[31mRed' })],
    ['DEL in a header', 'headers.X-Tag', 'headers.X-Tag: ', job({ headers: { 'X-Tag': 'a\u007f' } })],
    [
      'a control character in an attachment type',
      'attachments.0.contentType',
      'attachments.0.contentType: ',
      job({ attachments: [{ filename: 'a.txt', content: 'x', contentType: 'text/plain; x=\u0001' }] }),
    ],
    [
      'a control character in a Content-ID',
      'attachments.0.cid',
      'attachments.0.cid: ',
      job({ attachments: [{ filename: 'a.png', content: 'x', cid: 'logo\u0000' }] }),
    ],
    ['a leading dot', 'to', "to: not an email address: '.lead@example.com'", job({ to: '.lead@example.com' })],
    [
      'a trailing dot',
      'to',
      "to: not an email address: 'Trail <trail.@example.com>'",
      job({ to: 'Trail <trail.@example.com>' }),
    ],
    [
      'two dots',
      'cc.1',
      "cc.1: not an email address: 'dou..ble@example.com'",
      job({ cc: ['a@example.com', 'dou..ble@example.com'] }),
    ],
    ['an IP literal', 'bcc', "bcc: not an email address: 'user@127.0.0.1'", job({ bcc: 'user@127.0.0.1' })],
    ['a domain without a dot', 'from', "from: not an email address: 'kim@example'", job({ from: 'kim@example' })],
    ['a bad reply-to', 'replyTo', "replyTo: not an email address: 'x@[10.0.0.1]'", job({ replyTo: 'x@[10.0.0.1]' })],
    [
      'an X-SES header',
      'headers.X-SES-CONFIGURATION-SET',
      'headers.X-SES-CONFIGURATION-SET: ',
      job({ headers: { 'X-SES-CONFIGURATION-SET': 'other' } }),
    ],
    ['Resent-Bcc', 'headers.resent-bcc', 'headers.resent-bcc: ', job({ headers: { 'resent-bcc': 'spy@example.com' } })],
    [
      'DKIM-Signature',
      'headers.DKIM-Signature',
      'headers.DKIM-Signature: ',
      job({ headers: { 'DKIM-Signature': 'v=1' } }),
    ],
    [
      'Content-Disposition',
      'headers.Content-Disposition',
      'headers.Content-Disposition: ',
      job({ headers: { 'Content-Disposition': 'attachment' } }),
    ],
    ['a batch job id', 'id', 'id: ', job({ id: victim, to: 'attacker@example.com' })],
  ]

  test.each(cases)('%s', async (_name, field, text, input) => {
    const queue = newQueue()
    const error = await refusal(queue, () => queue.enqueue(input))
    expect(error).toMatchObject({ code: 'E_VALIDATION', field })
    expect(error.message).toContain(text)
  })

  test('enqueueMany names the job and the nested field', async () => {
    const queue = newQueue()
    const nested: [string, EmailJobInput][] = [
      ['1.cc.1', job({ cc: ['a@example.com', 'dou..ble@example.com'] })],
      ['1.headers.Resent-Bcc', job({ headers: { 'Resent-Bcc': 'spy@example.com' } })],
      ['1.attachments.0.cid', job({ attachments: [{ filename: 'a.png', content: 'x', cid: 'a\u001b' }] })],
      ['1.id', job({ id: victim })],
      ['1.subject', job({ subject: 'a\u0000' })],
    ]
    for (const [field, bad] of nested) {
      const error = await refusal(queue, () => queue.enqueueMany([job(), bad, job()]))
      expect(error).toMatchObject({ code: 'E_VALIDATION', field })
      expect(error.message).toContain(`jobs[1]: invalid job: ${field.slice(2)}: `)
    }
  })
})

describe('a caller id may not take a batch job id', () => {
  test('the victim of a refused look-alike still gets the issue', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    const victimId = batchJobId('issue-42', 'victim@example.com')
    const attack = { id: victimId, to: 'attacker@example.com', subject: 'x', text: 'x', type: 'newsletter' }
    await expect(queue.enqueue(attack)).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'id' })
    await expect(queue.enqueueMany([attack])).rejects.toMatchObject({ code: 'E_VALIDATION', field: '0.id' })
    expect(await queue.getStatus(victimId)).toBeNull()

    const result = await queue.enqueueBatch('issue-42', ['victim@example.com', 'other@example.com'], undefined, {
      subject: 'Issue 42',
      text: 'Hello',
    })
    expect(result).toMatchObject({ total: 2, enqueued: 2, duplicates: 0 })
    worker().start()
    expect(await settled(victimId)).toMatchObject({ status: 'sent', batchId: 'issue-42' })
    expect(transport.messages.find((sent) => sent.message.jobId === victimId)?.message.to).toEqual([
      { address: 'victim@example.com' },
    ])
    expect(transport.messages.some((sent) => sent.message.to.some((to) => to.address === 'attacker@example.com'))).toBe(
      false,
    )
  })
})

describe('internationalised domains', () => {
  test('are stored as punycode', async () => {
    const queue = newQueue()
    const { id } = await queue.enqueue(job({ to: '김철수 <kim@도메인.한국>', cc: 'lee@도메인.한국' }))
    const [[, fields] = ['', []]] = await redis.xrange(`${queue.prefix}:send:normal`, '-', '+')
    const stored = JSON.parse(fields[fields.indexOf('job') + 1] as string)
    expect(stored).toMatchObject({
      id,
      to: [{ name: '김철수', address: `kim@${IDN}` }],
      cc: [{ address: `lee@${IDN}` }],
    })
    expect(fields[fields.indexOf('r') + 1]).toBe(`kim@${IDN},lee@${IDN}`)
  })

  test('reach the memory transport as punycode, and so does an IDN worker from', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    worker({ from: 'Vality <news@도메인.한국>' }).start()
    const { id } = await queue.enqueue(job({ to: 'user@도메인.한국', replyTo: 'reply@도메인.한국' }))
    expect((await settled(id)).status).toBe('sent')
    const [sent] = transport.messages
    expect(sent?.message).toMatchObject({
      from: { name: 'Vality', address: `news@${IDN}` },
      to: [{ address: `user@${IDN}` }],
      replyTo: [{ address: `reply@${IDN}` }],
    })
  })

  test('a batch recipient is stored and sent as punycode', async () => {
    const { queue, transport, worker, settled } = harness(redis)
    worker().start()
    await queue.enqueueBatch('issue-idn', ['user@도메인.한국'], undefined, { subject: 'Issue', text: 'Hello' })
    expect((await settled(batchJobId('issue-idn', `user@${IDN}`))).status).toBe('sent')
    expect(transport.messages[0]?.message.to).toEqual([{ address: `user@${IDN}` }])
  })

  test('the suppression list, batch ids and verification codes key the punycode form', async () => {
    const queue = newQueue()
    await queue.suppression.add('Kim@도메인.한국', 'complaint')
    expect(await queue.suppression.has(`kim@${IDN}`)).toBe(true)
    expect(await queue.suppression.has('KIM@도메인.한국')).toBe(true)
    expect(batchJobId('issue-9', 'kim@도메인.한국')).toBe(batchJobId('issue-9', `kim@${IDN}`))
    await expect(queue.suppression.add('kim@example')).rejects.toMatchObject({
      code: 'E_VALIDATION',
      field: 'address',
      message: expect.stringContaining("not an email address: 'kim@example'"),
    })
  })

  test('reach SMTP as punycode, in the commands and the headers', async () => {
    const smtp = await startSmtpLocal()
    // What the client writes on the wire (smtp-server shows handlers the domain decoded to Unicode).
    const commands: string[] = []
    const log = (_entry: unknown, message: string, ...args: unknown[]) => {
      commands.push(String(message).replace(/%s/g, () => String(args.shift())))
    }
    const logger = { trace: log, debug: log, info: log, warn: log, error: log, fatal: log, level() {} }
    const smtpTransport = createSmtpTransport({
      options: { host: '127.0.0.1', port: smtp.port, secure: false, logger, debug: true } as never,
      from: 'news@도메인.한국',
    })
    try {
      const { queue, worker, settled } = harness(redis)
      worker({ transport: smtpTransport, from: undefined }).start()
      const { id } = await queue.enqueue(job({ to: 'user@도메인.한국' }))
      expect((await settled(id)).status).toBe('sent')
      const wire = commands.join('\n')
      expect(wire).toContain(`MAIL FROM:<news@${IDN}>`)
      expect(wire).toContain(`RCPT TO:<user@${IDN}>`)
      expect(wire).not.toContain('도메인')
      const raw = smtp.deliveries[0]?.raw.toString('utf8') ?? ''
      expect(raw).toMatch(new RegExp(`^To: user@${IDN.replace(/\./g, '\\.')}\\r$`, 'm'))
      expect(raw).toMatch(new RegExp(`^From: news@${IDN.replace(/\./g, '\\.')}\\r$`, 'm'))
    } finally {
      await smtpTransport.close()
      await smtp.close()
    }
  })

  test('reach SES as punycode', async () => {
    const ses = await startSesLocal()
    const sesTransport = createSesTransport({ clientConfig: ses.clientConfig() })
    try {
      const { queue, worker, settled } = harness(redis)
      worker({ transport: sesTransport, from: 'news@도메인.한국' }).start()
      const { id } = await queue.enqueue(job({ to: 'user@도메인.한국' }))
      expect((await settled(id)).status).toBe('sent')
      const [stored] = await ses.emails()
      expect(stored?.destination.to).toEqual([`user@${IDN}`])
      expect(stored?.from).toContain(`news@${IDN}`)
    } finally {
      await sesTransport.close()
      await ses.close()
    }
  })
})

describe('Redis Cluster prefix', () => {
  // Only the prefix rule is under test here: the check reads nothing from the client but isCluster.
  const cluster = { isCluster: true } as unknown as RedisClient

  test.each(['{}{email}', 'a{}b{email}', '{email', 'email}', 'email', '}{email', '{}'])('refuses %s', (prefix) => {
    expect(() => checkClusterPrefix(cluster, prefix, 'createEmailQueue')).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', field: 'prefix' }),
    )
  })

  test.each([
    ['{email}', 'email'],
    ['app:{email}', 'email'],
    ['{email}:v2', 'email'],
    ['a}b{email}', 'email'],
    ['{a{b}', 'a{b'],
    ['{email}{other}', 'email'],
  ])('accepts %s (tag %s)', (prefix, tag) => {
    expect(clusterHashTag(prefix)).toBe(tag)
    expect(() => checkClusterPrefix(cluster, prefix, 'createEmailQueue')).not.toThrow()
  })

  test('accepts a prefix exactly when every key of its queue lands in one slot of a real cluster node', async () => {
    const binary = findRedisServer()
    if (!binary) throw new Error('redis-server not found')
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'mailstream-slot-'))
    const child = spawn(
      binary,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: 'ignore' },
    )
    const node = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 })
    node.on('error', () => {})
    try {
      await waitUntil(
        () =>
          node.ping().then(
            () => true,
            () => false,
          ),
        10_000,
        'the cluster-enabled node',
      )
      const prefixes = [
        '{}{email}',
        'a{}b{email}',
        '{email',
        'email}',
        'email',
        '}{email}',
        '{email}',
        'a}b{email}',
        '{a{b}',
        '{email}{other}',
        'app:{x}:v2',
      ]
      for (const prefix of prefixes) {
        const keys = [
          `${prefix}:send:high`,
          `${prefix}:delayed`,
          `${prefix}:status:abc`,
          `${prefix}:idem:k}x`,
          `${prefix}:verification:code:a{b}@example.com`,
        ]
        const slots = new Set<number>()
        for (const key of keys) slots.add(Number(await node.call('CLUSTER', 'KEYSLOT', key)))
        let accepted = true
        try {
          checkClusterPrefix(cluster, prefix, 'createEmailQueue')
        } catch {
          accepted = false
        }
        expect(accepted, prefix).toBe(slots.size === 1)
      }
    } finally {
      node.disconnect()
      child.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('a plain Redis takes any prefix', () => {
    expect(() => checkClusterPrefix({} as RedisClient, '{}{email}', 'createEmailQueue')).not.toThrow()
  })
})
