import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type EmailMessage, type RetryClass, type Transport, TransportError } from '../../src/index.js'

/** A message as the receiving side saw it, whatever the transport. Addresses are bare and lower-case. */
export interface ReceivedMessage {
  from?: string
  to: string[]
  cc: string[]
  /** Only where the receiving side can see Bcc recipients (envelope or API call). */
  bcc?: string[]
  replyTo: string[]
  subject: string
  text?: string
  html?: string
  /** Header names lower-case. */
  headers: Record<string, string>
  attachments: { filename: string; content: Buffer; contentType?: string }[]
}

export interface ContractHarness {
  transport: Transport
  /** Reads back what the receiving side got for this send. */
  received(message: EmailMessage, messageId: string): Promise<ReceivedMessage>
  /** Makes the next send fail the way the provider signals this class of failure. */
  failNext(kind: RetryClass): Promise<void> | void
  close?(): Promise<void>
}

let sequence = 0
function message(overrides: Partial<EmailMessage> = {}): EmailMessage {
  sequence++
  return {
    jobId: `contract-${Date.now()}-${sequence}`,
    type: 'welcome',
    priority: 'normal',
    from: { name: 'Mailstream', address: 'noreply@example.com' },
    to: [{ address: `reader${sequence}@example.com` }],
    subject: `Contract ${sequence}`,
    text: 'Plain text body',
    ...overrides,
  }
}

const send = (transport: Transport, msg: EmailMessage) =>
  transport.send(msg, { signal: new AbortController().signal, attempt: 1 })

/** The shared suite every transport runs: same inputs, same expectations. */
export function transportContract(name: string, setup: () => Promise<ContractHarness>): void {
  describe(`transport contract: ${name}`, () => {
    let harness: ContractHarness
    beforeAll(async () => {
      harness = await setup()
    })
    afterAll(async () => {
      await harness?.close?.()
      await harness?.transport.close?.()
    })

    async function roundTrip(msg: EmailMessage): Promise<ReceivedMessage> {
      const result = await send(harness.transport, msg)
      expect(result.messageId).toEqual(expect.any(String))
      expect(result.messageId.length).toBeGreaterThan(0)
      return harness.received(msg, result.messageId)
    }

    test('has a name', () => {
      expect(harness.transport.name).toEqual(expect.any(String))
    })

    test('each send gets its own message id', async () => {
      const first = await send(harness.transport, message())
      const second = await send(harness.transport, message())
      expect(first.messageId).not.toBe(second.messageId)
    })

    test('plain text', async () => {
      const msg = message({ text: 'Hello in plain text' })
      const got = await roundTrip(msg)
      expect(got.from).toBe('noreply@example.com')
      expect(got.to).toEqual([msg.to[0]?.address])
      expect(got.subject).toBe(msg.subject)
      expect(got.text?.trim()).toBe('Hello in plain text')
    })

    test('HTML with a text alternative', async () => {
      const got = await roundTrip(message({ html: '<p>Hello <b>HTML</b></p>', text: 'Hello HTML' }))
      expect(got.html).toContain('<b>HTML</b>')
      expect(got.text?.trim()).toBe('Hello HTML')
    })

    test('UTF-8 subject and body (Korean)', async () => {
      const subject = '[뉴스레터] 이번 주 소식 — 구독해 주셔서 감사합니다 🎉'
      const got = await roundTrip(
        message({ subject, text: '안녕하세요, 김철수님!', to: [{ name: '김철수', address: 'kim@example.kr' }] }),
      )
      expect(got.subject).toBe(subject)
      expect(got.text?.trim()).toBe('안녕하세요, 김철수님!')
      expect(got.to).toEqual(['kim@example.kr'])
    })

    test('cc, bcc and reply-to', async () => {
      const got = await roundTrip(
        message({
          to: [{ address: 'to@example.com' }],
          cc: [{ address: 'cc1@example.com' }, { address: 'cc2@example.com' }],
          bcc: [{ address: 'hidden@example.com' }],
          replyTo: [{ address: 'help@example.com' }],
        }),
      )
      expect(got.cc.sort()).toEqual(['cc1@example.com', 'cc2@example.com'])
      expect(got.replyTo).toEqual(['help@example.com'])
      if (got.bcc) expect(got.bcc).toEqual(['hidden@example.com'])
      expect(got.headers.bcc).toBeUndefined()
    })

    test('custom headers', async () => {
      const got = await roundTrip(message({ headers: { 'X-Campaign': 'spring-2026', 'X-Entity-Ref-ID': 'abc123' } }))
      expect(got.headers['x-campaign']).toBe('spring-2026')
      expect(got.headers['x-entity-ref-id']).toBe('abc123')
    })

    test('attachment', async () => {
      const content = Buffer.from('col1,col2\n1,2\n')
      const got = await roundTrip(
        message({
          attachments: [{ filename: 'report.csv', content: content.toString('base64'), contentType: 'text/csv' }],
        }),
      )
      expect(got.attachments).toHaveLength(1)
      expect(got.attachments[0]?.filename).toBe('report.csv')
      expect(got.attachments[0]?.content.equals(content)).toBe(true)
    })

    test.each(['throttle', 'later', 'never'] as const)(
      'a %s failure throws TransportError with that class',
      async (kind) => {
        await harness.failNext(kind)
        const error = await send(harness.transport, message()).catch((caught: unknown) => caught)
        expect(error).toBeInstanceOf(TransportError)
        expect((error as TransportError).retry).toBe(kind)
        expect((error as TransportError).message).toMatch(/^\[mailstream\] /)
        // The failure does not stick: the next send goes through.
        const ok = await send(harness.transport, message())
        expect(ok.messageId.length).toBeGreaterThan(0)
      },
    )
  })
}
