import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { createTransport } from 'nodemailer'
import { SMTPServer } from 'smtp-server'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import {
  type EmailMessage,
  MailstreamError,
  type RetryingEvent,
  type SentEvent,
  TransportError,
} from '../../src/index.js'
import { createSmtpTransport, type SmtpTransport } from '../../src/transports/smtp.js'
import { receivedFromMime } from '../helpers/mime.js'
import { harness, testJob } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'
import { freePort } from '../helpers/redis-server.js'
import { type SmtpLocal, type SmtpStage, startSmtpLocal } from '../helpers/smtp-local.js'
import { transportContract } from './contract.js'

// smtp-server waits 100 ms before each greeting: the transports here are pooled, so that is paid once.
const smtpOptions = (port: number) => ({ host: '127.0.0.1', port, secure: false, maxConnections: 2 })

transportContract('smtp', async () => {
  const smtp = await startSmtpLocal()
  const transport = createSmtpTransport({ options: smtpOptions(smtp.port) })
  return {
    transport,
    async received(_message, messageId) {
      const delivery = smtp.delivery(messageId)
      if (!delivery) throw new Error(`the SMTP server has no message ${messageId}`)
      const got = await receivedFromMime(delivery.raw)
      // Bcc is only in the envelope: the recipients no header names.
      const visible = new Set([...got.to, ...got.cc])
      return { ...got, bcc: delivery.envelope.to.filter((address) => !visible.has(address)) }
    },
    failNext(kind) {
      if (kind === 'throttle')
        smtp.fail(454, { stage: 'mail', text: 'Throttling failure: Maximum sending rate exceeded.' })
      else if (kind === 'later') smtp.fail(451, { stage: 'data', text: 'Temporary local problem' })
      else smtp.fail(554, { stage: 'data', text: 'Message rejected' })
    },
    async close() {
      await transport.close()
      await smtp.close()
    },
  }
})

let sequence = 0
function message(overrides: Partial<EmailMessage> = {}): EmailMessage {
  sequence++
  return {
    jobId: `smtp-${sequence}`,
    type: 'welcome',
    priority: 'normal',
    from: { address: 'noreply@example.com' },
    to: [{ address: `reader${sequence}@example.com` }],
    subject: `SMTP ${sequence}`,
    text: 'Hello',
    ...overrides,
  }
}
const context = (signal = new AbortController().signal) => ({ signal, attempt: 1 })

describe('SMTP transport', () => {
  let smtp: SmtpLocal
  let transport: SmtpTransport
  beforeAll(async () => {
    smtp = await startSmtpLocal()
    transport = createSmtpTransport({ options: smtpOptions(smtp.port), from: 'Vality <hello@vality.kr>' })
  })
  afterAll(async () => {
    await transport?.close()
    await smtp?.close()
  })

  // A 4xx is a throttle only when its text says rate or throttling; a 454 is not one by itself.
  const cases: [number, SmtpStage, 'throttle' | 'later' | 'never', string][] = [
    [421, 'mail', 'later', '4.3.2 Service not available, closing transmission channel'],
    [450, 'rcpt', 'later', '4.2.1 Mailbox busy'],
    [451, 'data', 'later', '4.3.0 Temporary local problem'],
    [452, 'data', 'later', '4.3.1 Insufficient system storage'],
    [454, 'mail', 'throttle', 'Throttling failure: Maximum sending rate exceeded.'],
    [454, 'data', 'throttle', 'Throttling failure: Maximum sending rate exceeded.'],
    [454, 'rcpt', 'later', '4.7.1 Relay access denied'],
    [454, 'rcpt', 'later', '4.7.1 <rate@example.com>: Relay access denied'],
    [454, 'mail', 'later', '4.7.0 TLS not available due to local problem'],
    [451, 'rcpt', 'throttle', '4.7.650 The mail server [192.0.2.1] has been temporarily rate limited'],
    [450, 'rcpt', 'throttle', '4.7.28 Our system has detected an unusual rate of unsolicited mail'],
    [550, 'rcpt', 'never', '5.1.1 No such user'],
    [552, 'data', 'never', '5.3.4 Message size exceeds fixed limit'],
    [554, 'data', 'never', '5.7.1 Message rejected'],
    [554, 'rcpt', 'never', '5.7.1 Sending rate too high for a permanent block'],
  ]
  test.each(cases)('%i after %s -> %s (%s)', async (code, stage, retry, text) => {
    smtp.fail(code, { stage, text })
    const before = smtp.deliveries.length
    const error = (await transport.send(message(), context()).catch((caught: unknown) => caught)) as TransportError
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({ retry, statusCode: code, pause: false })
    expect(error.message).toMatch(/^\[mailstream\] \[smtp\] /)
    expect(error.message).toContain(`${code} ${text}`)
    expect(error.cause).toBeInstanceOf(Error)
    expect(smtp.deliveries.length).toBe(before)
  })

  test('a partial recipient rejection is reported; the others get the message', async () => {
    smtp.reject('gone@example.com', 550)
    try {
      const result = await transport.send(
        message({ to: [{ address: 'here@example.com' }], cc: [{ address: 'gone@example.com' }] }),
        context(),
      )
      expect(result.rejected).toEqual(['gone@example.com'])
      expect(smtp.delivery(result.messageId)?.envelope.to).toEqual(['here@example.com'])
    } finally {
      smtp.accept('gone@example.com')
    }
  })

  test('every recipient rejected: 5xx is never, a deferral among them is later', async () => {
    smtp.reject('gone@example.com', 550)
    smtp.reject('full@example.com', 452)
    try {
      const gone = message({ to: [{ address: 'gone@example.com' }] })
      await expect(transport.send(gone, context())).rejects.toMatchObject({ retry: 'never', statusCode: 550 })
      const mixed = message({ to: [{ address: 'gone@example.com' }, { address: 'full@example.com' }] })
      await expect(transport.send(mixed, context())).rejects.toMatchObject({ retry: 'later', statusCode: 452 })
    } finally {
      smtp.accept('gone@example.com')
      smtp.accept('full@example.com')
    }
  })

  test('a refused connection is later', async () => {
    const nowhere = createSmtpTransport({ options: { ...smtpOptions(await freePort()), connectionTimeout: 2000 } })
    const error = await nowhere.send(message(), context()).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({
      retry: 'later',
      statusCode: 'ESOCKET',
      message: expect.stringContaining('ECONNREFUSED'),
    })
    await nowhere.close()
  })

  test('honours the abort signal while the server holds the message', async () => {
    smtp.hangNext()
    const controller = new AbortController()
    const sending = transport.send(message(), context(controller.signal)).catch((caught: unknown) => caught)
    await expect.poll(() => smtp.holding).toBe(1)
    controller.abort()
    expect(await sending).toMatchObject({ retry: 'later', message: expect.stringContaining('send aborted') })
    // The pool goes on.
    const after = await transport.send(message(), context())
    expect(smtp.delivery(after.messageId)).toBeDefined()
  })

  test('fills in the transport sender; a message with no sender at all is never sent', async () => {
    const { from: _from, ...withoutSender } = message()
    const { messageId } = await transport.send(withoutSender, context())
    const got = await receivedFromMime((smtp.delivery(messageId) ?? { raw: '' }).raw)
    expect(got.from).toBe('hello@vality.kr')
    const bare = createSmtpTransport({ options: smtpOptions(smtp.port) })
    await expect(bare.send(withoutSender, context())).rejects.toMatchObject({ retry: 'never' })
    await bare.close()
  })

  test('a URL makes a pooled transport; a transporter of your own is used as it is and never closed', async () => {
    const fromUrl = createSmtpTransport({ url: `smtp://127.0.0.1:${smtp.port}` })
    expect(fromUrl.transporter.transporter.name).toBe('SMTP (pool)')
    await fromUrl.verify()
    const viaUrl = await fromUrl.send(message(), context())
    expect(smtp.delivery(viaUrl.messageId)).toBeDefined()
    await fromUrl.close()

    const own = createTransport({ host: '127.0.0.1', port: smtp.port, secure: false })
    const wrapped = createSmtpTransport({ transporter: own })
    await wrapped.close()
    const viaOwn = await wrapped.send(message(), context())
    expect(smtp.delivery(viaOwn.messageId)).toBeDefined()
    own.close()
  })

  test('options are validated with E_CONFIG naming the field', () => {
    const field = (options: unknown) => {
      try {
        createSmtpTransport(options as never)
      } catch (error) {
        expect(error).toBeInstanceOf(MailstreamError)
        expect((error as MailstreamError).code).toBe('E_CONFIG')
        return (error as MailstreamError).field
      }
      return undefined
    }
    expect(field({})).toBe('url')
    expect(field({ url: 'http://example.com' })).toBe('url')
    expect(field({ url: 'smtp://127.0.0.1:25', options: { host: 'x' } })).toBe('options')
    expect(field({ options: { host: 'x' }, from: 'nope' })).toBe('from')
  })
})

describe('SMTP sessions', () => {
  /** smtp-server that records each session's EHLO name and every command it is given. */
  async function recordingServer() {
    const commands: string[] = []
    const ehloNames: string[] = []
    const log = (meta: { tnx?: string; command?: string }) => {
      if (meta?.tnx === 'command' && meta.command) commands.push(meta.command)
    }
    const quiet = () => {}
    const logger = { info: quiet, debug: log, error: quiet, warn: quiet, trace: quiet, fatal: quiet }
    const server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      disableReverseLookup: true,
      logger: logger as never,
      onMailFrom(_address, session, callback) {
        ehloNames.push(session.hostNameAppearsAs)
        callback()
      },
      onData(stream, _session, callback) {
        stream.resume()
        stream.on('end', () => callback())
      },
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.server.address() as AddressInfo).port
    return { port, commands, ehloNames, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
  }

  test('close() says QUIT on the pooled connections before it closes them', async () => {
    const server = await recordingServer()
    const transport = createSmtpTransport({ options: smtpOptions(server.port) })
    await Promise.all([transport.send(message(), context()), transport.send(message(), context())])
    await transport.close()
    await expect.poll(() => server.commands.filter((command) => command === 'QUIT').length).toBe(2)
    expect(server.commands.filter((command) => command === 'EHLO')).toHaveLength(2)
    await server.close()
  })

  test("the EHLO name: the host name when fully qualified, else the domain of the transport's from", async () => {
    const server = await recordingServer()
    const expected = hostname().includes('.') ? hostname() : 'mail.vality.kr'
    const viaOptions = createSmtpTransport({ options: smtpOptions(server.port), from: 'Vality <news@mail.vality.kr>' })
    await viaOptions.send(message(), context())
    await viaOptions.close()
    const viaUrl = createSmtpTransport({ url: `smtp://127.0.0.1:${server.port}`, from: 'news@mail.vality.kr' })
    await viaUrl.send(message(), context())
    await viaUrl.close()
    // Given explicitly, it is used as it is, with options or in the URL.
    const named = createSmtpTransport({ options: { ...smtpOptions(server.port), name: 'mx.example.org' } })
    await named.send(message(), context())
    await named.close()
    const namedUrl = createSmtpTransport({
      url: `smtp://127.0.0.1:${server.port}?name=out.example.org`,
      from: 'a@vality.kr',
    })
    await namedUrl.send(message(), context())
    await namedUrl.close()
    expect(server.ehloNames).toEqual([expected, expected, 'mx.example.org', 'out.example.org'])
    await server.close()
  })
})

describe('queue -> worker -> SMTP', () => {
  const redis = connect()
  let smtp: SmtpLocal
  let transport: SmtpTransport
  beforeAll(async () => {
    smtp = await startSmtpLocal()
    transport = createSmtpTransport({ options: smtpOptions(smtp.port) })
  })
  afterAll(async () => {
    await transport?.close()
    await smtp?.close()
  })
  const job = testJob

  test('a 550 dead-letters the job at once; a 450 is retried and then delivered once', async () => {
    const { queue, worker, settled } = harness(redis)
    await worker({ transport, concurrency: 1 }).start()

    smtp.fail(550, { stage: 'rcpt', text: 'No such user here' })
    const gone = await queue.enqueue(job({ to: 'gone@example.com' }))
    expect(await settled(gone.id)).toMatchObject({ status: 'dead', attempts: 1 })
    const [letter] = await queue.deadLetters.list()
    expect(letter).toMatchObject({ id: gone.id, error: expect.stringContaining('550 No such user here') })

    smtp.fail(450, { stage: 'data', text: 'Mailbox busy, try again later' })
    const busy = await queue.enqueue(job({ to: 'busy@example.com' }))
    const state = await settled(busy.id)
    expect(state).toMatchObject({ status: 'sent', attempts: 2 })
    const delivered = smtp.deliveries.filter((delivery) => delivery.envelope.to.includes('busy@example.com'))
    expect(delivered).toHaveLength(1)
    expect(delivered[0]?.messageId).toBe(state.messageId)
    expect(smtp.deliveries.some((delivery) => delivery.envelope.to.includes('gone@example.com'))).toBe(false)
  })

  test('a relay that answers 454 4.7.1 Relay access denied: attempts are used and the job is dead, with the reply', async () => {
    const { queue, worker, settled } = harness(redis)
    const w = worker({ transport, concurrency: 1, rateLimit: { perSecond: 14, burst: 14 } })
    const retrying: RetryingEvent[] = []
    w.on('retrying', (event) => retrying.push(event))
    await w.start()
    smtp.fail(454, { stage: 'rcpt', times: 3, text: '4.7.1 <reader@example.com>: Relay access denied' })
    const { id } = await queue.enqueue(job({ to: 'reader@example.com', maxAttempts: 3 }))
    expect(await settled(id)).toMatchObject({ status: 'dead', attempts: 3 })
    expect(retrying.map(({ throttled, attempts }) => ({ throttled, attempts }))).toEqual([
      { throttled: false, attempts: 1 },
      { throttled: false, attempts: 2 },
    ])
    const [letter] = await queue.deadLetters.list()
    expect(letter).toMatchObject({ id, attempts: 3, error: expect.stringContaining('454 4.7.1') })
    // Not a throttle: the worker's pace stays where it was.
    expect(w.pace).toBe(14)
  })

  test('recipients refused while others got the message are reported in the sent event', async () => {
    const { queue, worker } = harness(redis)
    const w = worker({ transport })
    const sent = new Promise<SentEvent>((resolve) => w.on('sent', resolve))
    await w.start()
    smtp.reject('moved@example.com', 550)
    try {
      const { id } = await queue.enqueue(job({ to: ['stays@example.com', 'moved@example.com'] }))
      expect(await sent).toMatchObject({ id, attempts: 1, rejected: ['moved@example.com'] })
    } finally {
      smtp.accept('moved@example.com')
    }
  })
})
