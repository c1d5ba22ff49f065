import { simpleParser } from 'mailparser'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import {
  createUnsubscribeToken,
  type EmailMessage,
  listUnsubscribeHeaders,
  MailstreamError,
  TransportError,
} from '../../src/index.js'
import { unsubscribeUrl } from '../../src/templates/unsubscribe.js'
import { createSesTransport, decodeTagValue, type SesTransport } from '../../src/transports/ses.js'
import {
  ACCOUNT_ROUTE,
  SES_FAULTS,
  type SesFault,
  type SesLocal,
  type StoredEmail,
  startSesLocal,
} from '../helpers/ses-local.js'
import { type ReceivedMessage, transportContract } from './contract.js'

/** The bare, lower-case address in `a@b.c`, `Name <a@b.c>` or `=?UTF-8?B?...?= <a@b.c>`. */
const bare = (value: string) => (/<([^>]+)>/.exec(value)?.[1] ?? value).trim().toLowerCase()

function toReceived(message: EmailMessage, email: StoredEmail): ReceivedMessage {
  // Attachments go as raw MIME; aws-ses-v2-local then reads recipients from the headers (no Bcc there).
  const raw = (message.attachments?.length ?? 0) > 0
  return {
    from: bare(email.from),
    to: email.destination.to.map(bare),
    cc: email.destination.cc.map(bare),
    ...(!raw && { bcc: email.destination.bcc.map(bare) }),
    replyTo: email.replyTo.flatMap((value) => value.split(',')).map(bare),
    subject: email.subject,
    ...(email.body.text !== undefined && { text: email.body.text }),
    ...(email.body.html !== undefined && { html: email.body.html }),
    headers: Object.fromEntries((email.headers ?? []).map(({ name, value }) => [name.toLowerCase(), value])),
    attachments: email.attachments.map((attachment) => ({
      filename: attachment.filename ?? '',
      content: Buffer.from(attachment.content, 'base64'),
      ...(attachment.contentType && { contentType: attachment.contentType }),
    })),
  }
}

const FAULT_FOR = { throttle: SES_FAULTS.throttle, later: SES_FAULTS.later, never: SES_FAULTS.never } as const

transportContract('ses', async () => {
  const ses = await startSesLocal()
  const transport = createSesTransport({ clientConfig: ses.clientConfig() })
  return {
    transport,
    async received(message, messageId) {
      const email = (await ses.emails()).find((candidate) => candidate.messageId === messageId)
      if (!email) throw new Error(`SES local has no message ${messageId}`)
      return toReceived(message, email)
    },
    failNext(kind) {
      ses.fail(FAULT_FOR[kind])
    },
    close: () => ses.close(),
  }
})

let sequence = 0
function message(overrides: Partial<EmailMessage> = {}): EmailMessage {
  sequence++
  return {
    jobId: `ses-${sequence}`,
    type: 'welcome',
    priority: 'normal',
    from: { address: 'noreply@example.com' },
    to: [{ address: `reader${sequence}@example.com` }],
    subject: `SES ${sequence}`,
    text: 'Hello',
    ...overrides,
  }
}
const context = (signal = new AbortController().signal) => ({ signal, attempt: 1 })
type SentRequest = {
  EmailTags: { Name: string; Value: string }[]
  FromEmailAddress?: string
  ConfigurationSetName?: string
  Destination: { ToAddresses?: string[]; CcAddresses?: string[]; BccAddresses?: string[] }
  Content: { Simple?: { Headers?: { Name: string; Value: string }[] }; Raw?: { Data: string } }
}
/** The text of `=?UTF-8?B?...?=` words (mailparser leaves custom headers as they are). */
const decodeWords = (value: string) =>
  Buffer.concat(
    [...value.matchAll(/=\?UTF-8\?B\?([A-Za-z0-9+/=]+)\?=/gi)].map((match) =>
      Buffer.from(match[1] as string, 'base64'),
    ),
  ).toString('utf8')
const tagsOf = (request: SentRequest) => Object.fromEntries(request.EmailTags.map((tag) => [tag.Name, tag.Value]))

describe('SES transport', () => {
  let ses: SesLocal
  let transport: SesTransport
  beforeAll(async () => {
    ses = await startSesLocal()
  })
  afterAll(async () => {
    await transport?.close()
    await ses?.close()
  })
  beforeEach(async () => {
    await ses.clear()
    transport = createSesTransport({
      clientConfig: ses.clientConfig(),
      configurationSetName: 'vality-events',
      tags: { app: 'vality', campaign: 'default' },
    })
  })
  const lastRequest = () => ses.sendRequests().at(-1) as SentRequest

  test('tags every message with job_id, batch_id and type, escaped for SES and decodable', async () => {
    await transport.send(
      message({ jobId: 'job:42.a_b', batchId: 'issue:2026.05', type: 'newsletter', tags: { campaign: 'spring' } }),
      context(),
    )
    const request = lastRequest()
    const tags = tagsOf(request)
    expect(tags).toEqual({
      app: 'vality',
      campaign: 'spring', // the message's tag wins over the transport's
      job_id: 'job_c42_da__b',
      batch_id: 'issue_c2026_d05',
      type: 'newsletter',
    })
    for (const tag of request.EmailTags) expect(tag.Value).toMatch(/^[A-Za-z0-9_-]{1,256}$/)
    expect(decodeTagValue(tags.job_id as string)).toBe('job:42.a_b')
    expect(decodeTagValue(tags.batch_id as string)).toBe('issue:2026.05')
    expect(request.ConfigurationSetName).toBe('vality-events')
  })

  test('a message cannot overwrite job_id, batch_id or type; no batch_id without a batch', async () => {
    await transport.send(message({ jobId: 'plain', tags: { type: 'spoofed', batch_id: 'spoofed' } }), context())
    const tags = tagsOf(lastRequest())
    expect(tags.type).toBe('welcome')
    expect(tags.batch_id).toBeUndefined()
    expect(tags.job_id).toBe('plain')
  })

  test('simple content carries custom headers and encodes non-ASCII display names', async () => {
    await transport.send(
      message({
        from: { name: '밸리티 뉴스레터', address: 'news@vality.kr' },
        to: [{ name: 'Kim, Chulsoo', address: 'kim@example.kr' }],
        headers: { 'List-Unsubscribe': '<https://vality.kr/u/1>' },
      }),
      context(),
    )
    const request = lastRequest()
    expect(request.Content.Simple?.Headers).toEqual([{ Name: 'List-Unsubscribe', Value: '<https://vality.kr/u/1>' }])
    expect(request.Destination.ToAddresses).toEqual(['"Kim, Chulsoo" <kim@example.kr>'])
    const from = request.FromEmailAddress as string
    expect(from).toMatch(/^=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?= <news@vality\.kr>$/)
    const encoded = /B\?([^?]+)\?=/.exec(from)?.[1] as string
    expect(Buffer.from(encoded, 'base64').toString('utf8')).toBe('밸리티 뉴스레터')
  })

  test('a non-ASCII header value goes as RFC 2047 encoded words, as nodemailer writes it over SMTP', async () => {
    await transport.send(message({ headers: { 'X-Campaign': '봄 소식\t2026', 'X-Plain': 'a\tb' } }), context())
    const headers = lastRequest().Content.Simple?.Headers ?? []
    expect(headers.find((header) => header.Name === 'X-Plain')?.Value).toBe('a b')
    const encoded = headers.find((header) => header.Name === 'X-Campaign')?.Value as string
    for (const header of headers) expect(header.Value).toMatch(/^[\x20-\x7e]{1,995}$/)
    expect(encoded).toMatch(/^=\?UTF-8\?B\?\S+\?=$/)
    expect(decodeWords(encoded)).toBe('봄 소식 2026')
  })

  test('headers that Simple content cannot carry send the message as raw MIME instead of failing', async () => {
    // The longest List-Unsubscribe the newsletter templates make for a 254-character address (its
    // token in the https link and in the mailto subject) fits Simple content as it is.
    const email = `${'r'.repeat(64)}@${'d'.repeat(63)}.${'e'.repeat(63)}.${'f'.repeat(57)}.kr`
    const unsubscribe = (base: string, list: string) => {
      const token = createUnsubscribeToken({ email, list }, 'unsubscribe-secret-0123456789')
      return listUnsubscribeHeaders(unsubscribeUrl(base, token), `mailto:unsubscribe@news.vality.kr?subject=${token}`)
    }
    const fits = unsubscribe('https://news.vality.kr/unsubscribe', 'vality-weekly')
    await transport.send(message({ headers: fits }), context())
    expect(lastRequest().Content.Simple?.Headers).toEqual(
      Object.entries(fits).map(([Name, Value]) => ({ Name, Value })),
    )
    await ses.clear()
    // A longer link base or list name does not: the message goes raw, not to the dead letters.
    const over = unsubscribe(`https://news.vality.kr/${'p'.repeat(60)}/unsubscribe`, 'vality-weekly-korean-edition')
    expect('List-Unsubscribe'.length + (over['List-Unsubscribe'] as string).length).toBeGreaterThan(996)
    const cases: Record<string, string>[] = [over, { 'X-Long': 'x'.repeat(996) }, { 'X-Korean': '소식'.repeat(200) }]
    for (const headers of cases) {
      await transport.send(message({ headers }), context())
      const request = lastRequest()
      expect(request.Content.Simple).toBeUndefined()
      const raw = Buffer.from(request.Content.Raw?.Data as string, 'base64')
      // Folded by nodemailer: no line over 998 octets, and read back whole.
      for (const line of raw.toString('latin1').split('\r\n')) expect(line.length).toBeLessThanOrEqual(998)
      const parsed = await simpleParser(raw)
      for (const [name, value] of Object.entries(headers)) {
        const got = parsed.headerLines.find((line) => line.key === name.toLowerCase())?.line as string
        const unfolded = got.replace(/\r\n[ \t]+/g, ' ').slice(name.length + 2)
        if (name === 'X-Korean') expect(decodeWords(unfolded)).toBe(value)
        else expect(unfolded.replace(/,\s+/g, ', ')).toBe(value)
      }
    }
    // The emails SES stored still name their recipients and sender.
    const stored = await ses.emails()
    expect(stored).toHaveLength(3)
    for (const email of stored) expect(email.from).toContain('noreply@example.com')
  })

  test('feedback forwarding and identity ARNs reach SendEmail', async () => {
    const arn = 'arn:aws:ses:eu-west-1:123456789012:identity/vality.kr'
    const withFeedback = createSesTransport({
      clientConfig: ses.clientConfig(),
      feedbackForwardingEmailAddress: 'bounces@vality.kr',
      fromEmailAddressIdentityArn: arn,
      feedbackForwardingEmailAddressIdentityArn: arn,
    })
    await withFeedback.send(message(), context())
    await withFeedback.send(message({ attachments: [{ filename: 'a.txt', content: 'aGk=' }] }), context())
    const [simple, raw] = ses.sendRequests().slice(-2) as Record<string, unknown>[]
    for (const request of [simple, raw]) {
      expect(request).toMatchObject({
        FeedbackForwardingEmailAddress: 'bounces@vality.kr',
        FromEmailAddressIdentityArn: arn,
        FeedbackForwardingEmailAddressIdentityArn: arn,
      })
    }
    await transport.send(message(), context())
    expect(lastRequest()).not.toHaveProperty('FeedbackForwardingEmailAddress')
    await withFeedback.close()
  })

  test('attachments go as raw MIME; Bcc recipients stay in Destination and out of the MIME', async () => {
    await transport.send(
      message({
        bcc: [{ address: 'hidden@example.com' }],
        attachments: [{ filename: 'a.txt', content: Buffer.from('hi').toString('base64') }],
      }),
      context(),
    )
    const request = lastRequest()
    expect(request.Content.Simple).toBeUndefined()
    expect(request.Destination.BccAddresses).toEqual(['hidden@example.com'])
    const mime = Buffer.from(request.Content.Raw?.Data as string, 'base64').toString('utf8')
    expect(mime).toMatch(/^Content-Type: multipart\/mixed/m)
    expect(mime).toContain('filename=a.txt')
    expect(mime).not.toMatch(/^Bcc:/im)
    expect(tagsOf(request).job_id).toBeDefined()
  })

  const cases: [string, 'throttle' | 'later' | 'never', string | number, boolean, SesFault][] = [
    ['TooManyRequestsException (429)', 'throttle', 'TooManyRequestsException', false, SES_FAULTS.throttle],
    ['503 Service Unavailable', 'later', 503, false, SES_FAULTS.later],
    ['500 InternalFailure', 'later', 'InternalFailure', false, SES_FAULTS.internal],
    ['MessageRejected', 'never', 'MessageRejected', false, SES_FAULTS.never],
    // Account-wide configuration errors pause the worker, as a paused account does.
    ['MailFromDomainNotVerifiedException', 'never', 'MailFromDomainNotVerifiedException', true, SES_FAULTS.notVerified],
    ['BadRequestException', 'never', 'BadRequestException', false, SES_FAULTS.badRequest],
    ['NotFoundException (an unknown configuration set)', 'never', 'NotFoundException', true, SES_FAULTS.notFound],
    // A resource limit in SESv2, not a rate: no throttle that would wait without an attempt.
    [
      'LimitExceededException',
      'never',
      'LimitExceededException',
      false,
      {
        status: 400,
        type: 'LimitExceededException',
        message: 'There are too many instances of the specified resource type.',
      },
    ],
    ['SendingPausedException', 'never', 'SendingPausedException', true, SES_FAULTS.paused],
    ['AccountSuspendedException', 'never', 'AccountSuspendedException', true, SES_FAULTS.suspended],
    [
      'AccessDeniedException (credentials, not the message)',
      'later',
      'AccessDeniedException',
      false,
      SES_FAULTS.accessDenied,
    ],
    ['a reset connection', 'later', 'ECONNRESET', false, { reset: true }],
  ]
  test.each(cases)(
    '%s -> %s, one request only (the SDK does not retry)',
    async (_name, retry, statusCode, pause, fault) => {
      ses.fail(fault)
      const before = ses.requests.length
      const error = (await transport.send(message(), context()).catch((caught: unknown) => caught)) as TransportError
      expect(error).toBeInstanceOf(TransportError)
      expect(error).toMatchObject({ code: 'E_TRANSPORT', retry, statusCode, pause })
      expect(error.message.startsWith('[mailstream] [ses] ')).toBe(true)
      expect(error.cause).toBeInstanceOf(Error)
      expect(ses.requests.length - before).toBe(1)
      expect(await ses.emails()).toHaveLength(0)
    },
  )

  test('"Daily message quota exceeded" is a throttle with a long wait', async () => {
    const quota = createSesTransport({ clientConfig: ses.clientConfig(), quotaRetryAfterMs: 2 * 3600_000 })
    ses.fail(SES_FAULTS.quota)
    const error = await quota.send(message(), context()).catch((caught: unknown) => caught)
    expect(error).toMatchObject({ retry: 'throttle', retryAfterMs: 2 * 3600_000 })
    ses.fail(SES_FAULTS.throttle)
    const rate = await quota.send(message(), context()).catch((caught: unknown) => caught)
    expect((rate as TransportError).retryAfterMs).toBeUndefined()
    await quota.close()
  })

  test('a 503 reaches SES once even when clientConfig asks for retries; a client of your own keeps its setting', async () => {
    const forced = createSesTransport({ clientConfig: { ...ses.clientConfig(), maxAttempts: 5 } })
    ses.fail(SES_FAULTS.later, 5)
    let before = ses.requests.length
    await expect(forced.send(message(), context())).rejects.toMatchObject({ retry: 'later' })
    expect(ses.requests.length - before).toBe(1)
    await forced.close()

    // The control: the same fault with an SDK client that retries is seen by the gate 3 times.
    const retrying = createSesTransport({ client: ses.client({ maxAttempts: 3 }) })
    before = ses.requests.length
    await expect(retrying.send(message(), context())).rejects.toMatchObject({ retry: 'later' })
    expect(ses.requests.length - before).toBe(3)
    retrying.client.destroy()
  })

  test('honours the abort signal of the send', async () => {
    ses.fail({ hang: true })
    const controller = new AbortController()
    const before = ses.requests.length
    const sending = transport.send(message(), context(controller.signal)).catch((caught: unknown) => caught)
    await expect.poll(() => ses.requests.length).toBe(before + 1)
    controller.abort()
    const error = await sending
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({ retry: 'later', statusCode: 'AbortError' })
  })

  test('a message without any sender is refused without a request', async () => {
    const before = ses.requests.length
    const { from: _from, ...withoutSender } = message()
    await expect(transport.send(withoutSender, context())).rejects.toMatchObject({ retry: 'never' })
    expect(ses.requests.length).toBe(before)
    const withDefault = createSesTransport({ clientConfig: ses.clientConfig(), from: 'Vality <hello@vality.kr>' })
    await withDefault.send(withoutSender, context())
    expect((lastRequest() as SentRequest).FromEmailAddress).toBe('Vality <hello@vality.kr>')
    await withDefault.close()
  })

  test('getSendQuota reads the account quota from GetAccount', async () => {
    process.env.AWS_SES_ACCOUNT = JSON.stringify({
      DedicatedIpAutoWarmupEnabled: false,
      Details: {
        AdditionalContactEmailAddresses: [],
        ContactLanguage: 'EN',
        MailType: 'MARKETING',
        ReviewDetails: { CaseId: 'case-1', Status: 'GRANTED' },
        UseCaseDescription: 'newsletter',
        WebsiteURL: 'https://vality.kr',
      },
      EnforcementStatus: 'HEALTHY',
      ProductionAccessEnabled: true,
      SendingEnabled: true,
      SendQuota: { Max24HourSend: 50_000, MaxSendRate: 14, SentLast24Hours: 1234 },
      SuppressionAttributes: { SuppressedReasons: ['BOUNCE', 'COMPLAINT'] },
    })
    try {
      expect(await transport.getSendQuota()).toEqual({ maxSendRate: 14, max24HourSend: 50_000, sentLast24Hours: 1234 })
      ses.fail(SES_FAULTS.throttle, 1, ACCOUNT_ROUTE)
      await expect(transport.getSendQuota()).rejects.toMatchObject({ retry: 'throttle' })
    } finally {
      delete process.env.AWS_SES_ACCOUNT
    }
  })

  test('close() destroys only a client the transport created', async () => {
    const client = ses.client()
    const mine = createSesTransport({ client })
    await mine.close()
    await mine.send(message(), context()) // the client still works
    expect(await ses.emails()).toHaveLength(1)
    client.destroy()
  })

  test('options are validated with E_CONFIG naming the field', () => {
    const field = (options: unknown) => {
      try {
        createSesTransport(options as never)
      } catch (error) {
        expect(error).toBeInstanceOf(MailstreamError)
        expect((error as MailstreamError).code).toBe('E_CONFIG')
        return (error as MailstreamError).field
      }
      return undefined
    }
    expect(field({ client: ses.client(), region: 'eu-west-1' })).toBe('client')
    expect(field({ region: 'eu-west-1', tags: { job_id: 'x' } })).toBe('tags.job_id')
    expect(field({ region: 'eu-west-1', tags: { campaign: 'a b' } })).toBe('tags.campaign')
    expect(field({ region: 'eu-west-1', from: 'not an address' })).toBe('from')
    expect(field({ region: 'eu-west-1', configurationSetName: 'has space' })).toBe('configurationSetName')
    expect(field({ region: 'eu-west-1', maxAttempts: 3 })).toBe('maxAttempts')
    expect(field({ region: 'eu-west-1', feedbackForwardingEmailAddress: 'Bounces <b@vality.kr>' })).toBe(
      'feedbackForwardingEmailAddress',
    )
    expect(field({ region: 'eu-west-1', fromEmailAddressIdentityArn: 'vality.kr' })).toBe('fromEmailAddressIdentityArn')
    expect(
      field({ region: 'eu-west-1', feedbackForwardingEmailAddressIdentityArn: 'arn:aws:iam::123456789012:user/x' }),
    ).toBe('feedbackForwardingEmailAddressIdentityArn')
  })
})
