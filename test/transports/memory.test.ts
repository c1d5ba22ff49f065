import { describe, expect, test } from 'vitest'
import { formatAddress, MailstreamError, TransportError } from '../../src/index.js'
import { createMemoryTransport } from '../../src/transports/memory.js'
import { transportContract } from './contract.js'

const lower = (list: { address: string }[] | undefined) => (list ?? []).map((address) => address.address.toLowerCase())

transportContract('memory', async () => {
  const transport = createMemoryTransport()
  return {
    transport,
    async received(_message, messageId) {
      const sent = transport.find((candidate) => candidate.messageId === messageId)
      if (!sent) throw new Error('not recorded')
      const { message } = sent
      return {
        ...(message.from && { from: message.from.address }),
        to: lower(message.to),
        cc: lower(message.cc),
        bcc: lower(message.bcc),
        replyTo: lower(message.replyTo),
        subject: message.subject,
        ...(message.text !== undefined && { text: message.text }),
        ...(message.html !== undefined && { html: message.html }),
        headers: Object.fromEntries(
          Object.entries(message.headers ?? {}).map(([key, value]) => [key.toLowerCase(), value]),
        ),
        attachments: (message.attachments ?? []).map((attachment) => ({
          filename: attachment.filename,
          content: Buffer.from(attachment.content, 'base64'),
          ...(attachment.contentType && { contentType: attachment.contentType }),
        })),
      }
    },
    failNext(kind) {
      transport.failNext(kind)
    },
  }
})

describe('memory transport', () => {
  const msg = (to: string, subject = 'Hi') => ({
    jobId: to,
    type: 'welcome',
    priority: 'normal' as const,
    to: [{ address: to }],
    subject,
    text: 'x',
  })
  const context = () => ({ signal: new AbortController().signal, attempt: 1 })

  test('find, filter, waitFor, waitForCount and clear', async () => {
    const transport = createMemoryTransport({ from: 'noreply@example.com' })
    const later = transport.waitFor({ to: 'B@example.com' })
    await transport.send(msg('a@example.com'), context())
    await transport.send(msg('b@example.com', 'Second'), context())
    expect((await later).message.subject).toBe('Second')
    expect(transport.find({ subject: /Sec/ })?.message.jobId).toBe('b@example.com')
    expect(transport.filter({ subject: 'Hi' })).toHaveLength(1)
    expect(await transport.waitForCount(2)).toHaveLength(2)
    await expect(transport.waitFor({ to: 'nobody@example.com' }, { timeoutMs: 30 })).rejects.toMatchObject({
      code: 'E_TIMEOUT',
    })
    transport.clear()
    expect(transport.messages).toHaveLength(0)
    expect(transport.attempts).toBe(0)
  })

  test('a message with no sender is refused as SES and SMTP refuse it; the transport from is the fallback', async () => {
    const bare = createMemoryTransport()
    const error = await bare.send(msg('a@example.com'), context()).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({ retry: 'never', statusCode: 'NoSender' })
    expect(bare.messages).toHaveLength(0)
    const withFrom = createMemoryTransport({ from: 'noreply@example.com' })
    await withFrom.send(msg('a@example.com'), context())
    expect(withFrom.messages).toHaveLength(1)
    expect(() => createMemoryTransport({ from: 'nobody' })).toThrow(MailstreamError)
  })

  test('failNext fails exactly the next n sends with the given class and details', async () => {
    const transport = createMemoryTransport({ from: 'noreply@example.com' })
    transport.failNext('throttle', 2, { retryAfterMs: 1500, statusCode: 429 })
    for (let i = 0; i < 2; i++) {
      const error = await transport.send(msg('a@example.com'), context()).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(TransportError)
      expect(error).toMatchObject({ retry: 'throttle', retryAfterMs: 1500, statusCode: 429 })
    }
    await transport.send(msg('a@example.com'), context())
    expect(transport.messages).toHaveLength(1)
    expect(transport.attempts).toBe(3)
    expect(() => transport.failNext('sometimes' as never)).toThrow(MailstreamError)
  })

  test('latency can be aborted through the signal', async () => {
    const transport = createMemoryTransport({ latencyMs: 10_000 })
    const controller = new AbortController()
    const sending = transport.send(msg('a@example.com'), { signal: controller.signal, attempt: 1 })
    controller.abort()
    await expect(sending).rejects.toMatchObject({ retry: 'later' })
  })

  test('formatAddress renders what transports put in headers', () => {
    expect(formatAddress({ name: '김철수', address: 'kim@example.kr' })).toBe('"김철수" <kim@example.kr>')
  })
})
