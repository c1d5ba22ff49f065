import type { AddressInfo } from 'node:net'
import { SMTPServer, type SMTPServerError } from 'smtp-server'

export interface SmtpDelivery {
  /** MAIL FROM and RCPT TO as the server saw them (lower-case). */
  envelope: { from: string; to: string[] }
  raw: Buffer
  /** The Message-ID header, `<...>` included. */
  messageId: string
}

/** Where a fault is answered: after MAIL FROM, after each RCPT TO, or after the message data. */
export type SmtpStage = 'mail' | 'rcpt' | 'data'

export interface SmtpLocal {
  port: number
  readonly deliveries: SmtpDelivery[]
  /** The next `times` commands at `stage` are answered with `code` and `text`. */
  fail(code: number, options?: { stage?: SmtpStage; times?: number; text?: string }): void
  /** Every RCPT TO for this address is answered with `code`, until `accept(address)`. */
  reject(address: string, code?: number): void
  accept(address: string): void
  /** The next message's data is held unanswered until the client gives up or the server closes. */
  hangNext(): void
  /** Messages held by `hangNext` right now. */
  readonly holding: number
  delivery(messageId: string): SmtpDelivery | undefined
  close(): Promise<void>
}

const smtpError = (code: number, text: string): SMTPServerError =>
  Object.assign(new Error(text), { responseCode: code }) as SMTPServerError

/** smtp-server on loopback, plain text, no auth; it keeps every message it accepts. */
export async function startSmtpLocal(): Promise<SmtpLocal> {
  const deliveries: SmtpDelivery[] = []
  const faults: { stage: SmtpStage; code: number; text: string }[] = []
  const rejected = new Map<string, number>()
  const held: (() => void)[] = []
  let hang = false

  function takeFault(stage: SmtpStage): SMTPServerError | undefined {
    const index = faults.findIndex((fault) => fault.stage === stage)
    if (index < 0) return undefined
    const { code, text } = faults.splice(index, 1)[0] as { code: number; text: string }
    return smtpError(code, text)
  }

  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onMailFrom(_address, _session, callback) {
      callback(takeFault('mail') ?? null)
    },
    onRcptTo(address, _session, callback) {
      const code = rejected.get(address.address.toLowerCase())
      if (code !== undefined) return callback(smtpError(code, `Mailbox ${address.address} unavailable`))
      callback(takeFault('rcpt') ?? null)
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => {
        const fault = takeFault('data')
        if (fault) return callback(fault)
        if (hang) {
          hang = false
          held.push(() => callback(smtpError(421, 'closing')))
          return
        }
        const raw = Buffer.concat(chunks)
        const messageId = /^Message-ID:\s*(<[^>]+>)/im.exec(raw.toString('utf8'))?.[1] ?? ''
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address.toLowerCase() : ''
        const to = session.envelope.rcptTo.map((address) => address.address.toLowerCase())
        deliveries.push({ envelope: { from, to }, raw, messageId })
        callback(null, 'Queued')
      })
    },
  })
  server.on('error', () => {
    // a client that went away; nothing to do
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.server.address() as AddressInfo).port

  return {
    port,
    deliveries,
    fail(code, { stage = 'data', times = 1, text = 'Injected failure' } = {}) {
      for (let i = 0; i < times; i++) faults.push({ stage, code, text })
    },
    reject(address, code = 550) {
      rejected.set(address.toLowerCase(), code)
    },
    accept(address) {
      rejected.delete(address.toLowerCase())
    },
    hangNext() {
      hang = true
    },
    get holding() {
      return held.length
    },
    delivery(messageId) {
      return deliveries.find((delivery) => delivery.messageId === messageId)
    },
    async close() {
      for (const release of held.splice(0)) release()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
