import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest'
import { MailstreamError, TransportError } from '../../src/errors.js'
import type { EmailMessage, SendContext, SendResult, Transport } from '../../src/transport.js'
import { createSender } from '../../src/worker/sender.js'

const message = (jobId = 'job-1'): EmailMessage => ({
  jobId,
  type: 'welcome',
  priority: 'normal',
  to: [{ address: 'ada@example.com' }],
  subject: 'Hello',
})

/** A transport whose sends never end, and that ignores its signal: only the sender can cut it off. */
function stuckTransport() {
  const calls: { message: EmailMessage; context: SendContext }[] = []
  const transport: Transport = {
    name: 'stuck',
    send(sent, context) {
      calls.push({ message: sent, context })
      return new Promise<SendResult>(() => {})
    },
  }
  return { transport, calls }
}

/** How a send ended so far, without leaving a rejection unhandled. */
function watch(promise: Promise<SendResult>) {
  const seen: { result?: SendResult; error?: unknown; settled: boolean } = { settled: false }
  promise.then(
    (result) => {
      seen.result = result
      seen.settled = true
    },
    (error: unknown) => {
      seen.error = error
      seen.settled = true
    },
  )
  return seen
}

beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 })
})

afterEach(() => {
  vi.useRealTimers()
})

describe('send', () => {
  test("gives the transport's result, the message, the attempt and a live signal", async () => {
    const seen: SendContext[] = []
    const transport: Transport = {
      name: 'ok',
      async send(sent, context) {
        seen.push(context)
        return { messageId: `<${sent.jobId}@example.com>`, rejected: ['x@example.com'] }
      },
    }
    const sender = createSender(transport, 1000)
    await expect(sender.send(message(), 2)).resolves.toEqual({
      messageId: '<job-1@example.com>',
      rejected: ['x@example.com'],
    })
    expect(seen).toHaveLength(1)
    expect(seen[0]?.attempt).toBe(2)
    expect(seen[0]?.signal).toBeInstanceOf(AbortSignal)
    expect(seen[0]?.signal.aborted).toBe(false)
  })

  test('a send that never ends is cut off after sendTimeoutMs, and its signal is aborted', async () => {
    const { transport, calls } = stuckTransport()
    const sender = createSender(transport, 1000)
    const send = watch(sender.send(message(), 1))
    const signal = calls[0]?.context.signal as AbortSignal
    const aborts = vi.fn()
    signal.addEventListener('abort', aborts)

    await vi.advanceTimersByTimeAsync(999)
    expect(send.settled).toBe(false)
    expect(signal.aborted).toBe(false)

    await vi.advanceTimersByTimeAsync(1)
    expect(send.settled).toBe(true)
    expect(send.error).toBeInstanceOf(TransportError)
    expect(send.error).toMatchObject({ retry: 'later', message: '[mailstream] send timed out after 1000 ms' })
    expect(aborts).toHaveBeenCalledTimes(1)
    expect(signal.aborted).toBe(true)
    expect(signal.reason).toBe(send.error)
  })

  test('a transport that honours its signal ends with the timeout error', async () => {
    const transport: Transport = {
      name: 'polite',
      send: (_sent, { signal }) =>
        new Promise<SendResult>((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason))
        }),
    }
    const sender = createSender(transport, 200)
    const send = watch(sender.send(message(), 1))
    await vi.advanceTimersByTimeAsync(200)
    expect(send.error).toMatchObject({ code: 'E_TRANSPORT', retry: 'later' })
  })

  test('sends that start together share one signal and time out together', async () => {
    const { transport, calls } = stuckTransport()
    const sender = createSender(transport, 1000)
    const first = watch(sender.send(message('a'), 1))
    const second = watch(sender.send(message('b'), 1))
    expect(calls[0]?.context.signal).toBe(calls[1]?.context.signal)
    await vi.advanceTimersByTimeAsync(1000)
    expect(first.error).toBeInstanceOf(TransportError)
    expect(second.error).toBe(first.error)
  })

  test('a send started later gets its own full timeout', async () => {
    const { transport, calls } = stuckTransport()
    const sender = createSender(transport, 1000)
    const early = watch(sender.send(message('early'), 1))
    await vi.advanceTimersByTimeAsync(500)
    const late = watch(sender.send(message('late'), 1))
    expect(calls[1]?.context.signal).not.toBe(calls[0]?.context.signal)

    await vi.advanceTimersByTimeAsync(500)
    expect(early.error).toBeInstanceOf(TransportError)
    expect(late.settled).toBe(false)
    expect(calls[1]?.context.signal.aborted).toBe(false)

    await vi.advanceTimersByTimeAsync(500)
    expect(late.error).toBeInstanceOf(TransportError)
  })

  test('a send that finishes in time is not affected by a later timeout of its window', async () => {
    let finish: ((result: SendResult) => void) | undefined
    const { transport: stuck } = stuckTransport()
    const transport: Transport = {
      name: 'mixed',
      send: (sent, context) =>
        sent.jobId === 'quick' ? new Promise<SendResult>((resolve) => (finish = resolve)) : stuck.send(sent, context),
    }
    const sender = createSender(transport, 1000)
    const quick = watch(sender.send(message('quick'), 1))
    const slow = watch(sender.send(message('slow'), 1))
    await vi.advanceTimersByTimeAsync(100)
    finish?.({ messageId: 'm-1' })
    await vi.advanceTimersByTimeAsync(900)
    expect(quick.result).toEqual({ messageId: 'm-1' })
    expect(quick.error).toBeUndefined()
    expect(slow.error).toBeInstanceOf(TransportError)
  })

  test.each([
    ['undefined', undefined],
    ['an object without messageId', {}],
    ['a numeric messageId', { messageId: 42 }],
  ])('a transport that resolves %s fails the send, to be retried later', async (_name, result) => {
    const transport = { name: 'broken', send: async () => result } as unknown as Transport
    const sender = createSender(transport, 1000)
    const error = await sender.send(message(), 1).catch((thrown: unknown) => thrown)
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({ retry: 'later', message: '[mailstream] transport broken returned no messageId' })
  })

  test("the transport's own rejection reaches the caller as it is", async () => {
    const refused = new TransportError('550 no such user', { retry: 'never', statusCode: 550 })
    const transport: Transport = {
      name: 'refusing',
      send: () => Promise.reject(refused),
    }
    await expect(createSender(transport, 1000).send(message(), 1)).rejects.toBe(refused)
  })

  test('a transport that throws instead of returning a promise fails the send, not the caller', async () => {
    const bug = new TypeError('cannot read properties of undefined')
    const transport: Transport = {
      name: 'buggy',
      send() {
        throw bug
      },
    }
    await expect(createSender(transport, 1000).send(message(), 1)).rejects.toBe(bug)
  })
})

describe('abortAll', () => {
  test('ends every send in progress with the reason, across windows, and aborts their signals', async () => {
    const { transport, calls } = stuckTransport()
    const sender = createSender(transport, 10_000)
    const first = watch(sender.send(message('a'), 1))
    await vi.advanceTimersByTimeAsync(500)
    const second = watch(sender.send(message('b'), 1))
    expect(calls[0]?.context.signal).not.toBe(calls[1]?.context.signal)

    const reason = new MailstreamError('E_CLOSED', 'worker stopped before the send finished')
    sender.abortAll(reason)
    await vi.advanceTimersByTimeAsync(0)
    expect(first.error).toBe(reason)
    expect(second.error).toBe(reason)
    for (const call of calls) {
      expect(call.context.signal.aborted).toBe(true)
      expect(call.context.signal.reason).toBe(reason)
    }
    // Nothing is left to time out.
    expect(vi.getTimerCount()).toBe(0)
  })

  test('with nothing in progress it does nothing, and later sends still go', async () => {
    let sent = 0
    const transport: Transport = {
      name: 'ok',
      send: async (_message, { signal }) => {
        expect(signal.aborted).toBe(false)
        return { messageId: `m-${++sent}` }
      },
    }
    const sender = createSender(transport, 1000)
    sender.abortAll(new Error('nothing to stop'))
    await expect(sender.send(message(), 1)).resolves.toEqual({ messageId: 'm-1' })
    sender.abortAll(new Error('stop'))
    await expect(sender.send(message(), 1)).resolves.toEqual({ messageId: 'm-2' })
  })
})
