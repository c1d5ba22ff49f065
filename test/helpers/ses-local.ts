import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SESv2Client, type SESv2ClientConfig } from '@aws-sdk/client-sesv2'

/** An answer the gate gives instead of aws-ses-v2-local, the way SES would. */
export type SesFault =
  | { status: number; type?: string; message: string }
  /** Closes the connection without an answer (a network failure). */
  | { reset: true }
  /** Never answers (until the client gives up or the server closes). */
  | { hang: true }

export const SES_FAULTS = {
  throttle: { status: 429, type: 'TooManyRequestsException', message: 'Maximum sending rate exceeded.' },
  quota: { status: 429, type: 'TooManyRequestsException', message: 'Daily message quota exceeded.' },
  later: { status: 503, message: 'Service Unavailable' },
  internal: { status: 500, type: 'InternalFailure', message: 'We encountered an internal error. Please try again.' },
  never: {
    status: 400,
    type: 'MessageRejected',
    message: 'Email address is not verified. The following identities failed the check in region EU-WEST-1: a@b.c',
  },
  notVerified: {
    status: 400,
    type: 'MailFromDomainNotVerifiedException',
    message: 'The MAIL FROM domain is not verified.',
  },
  badRequest: { status: 400, type: 'BadRequestException', message: 'Invalid header name.' },
  notFound: { status: 404, type: 'NotFoundException', message: 'Configuration set does not exist.' },
  paused: { status: 400, type: 'SendingPausedException', message: 'Sending is paused for this account.' },
  suspended: { status: 400, type: 'AccountSuspendedException', message: 'The account is suspended.' },
  accessDenied: {
    status: 403,
    type: 'AccessDeniedException',
    message: 'User is not authorized to perform ses:SendEmail',
  },
} satisfies Record<string, SesFault>

export interface SeenRequest {
  method: string
  path: string
  body: string
  /** The fault the gate answered with, if any. */
  fault?: SesFault
}

/** What aws-ses-v2-local keeps of a sent message (GET /store). */
export interface StoredEmail {
  messageId: string
  from: string
  replyTo: string[]
  destination: { to: string[]; cc: string[]; bcc: string[] }
  subject: string
  body: { html?: string; text?: string }
  attachments: { filename?: string; content: string; contentType?: string }[]
  headers?: { name: string; value: string }[]
  at: number
}

export interface SesLocal {
  endpoint: string
  /** Every request that reached the gate, in order. */
  readonly requests: SeenRequest[]
  /** The next `times` requests to `route` (default: SendEmail) get this answer instead. */
  fail(fault: SesFault, times?: number, route?: string): void
  /** Requests to SendEmail, parsed. */
  sendRequests(): Record<string, unknown>[]
  emails(): Promise<StoredEmail[]>
  clear(): Promise<void>
  /** A client for this server: region eu-west-1, dummy credentials, `maxAttempts: 1` unless given. */
  client(config?: SESv2ClientConfig): SESv2Client
  /** Settings for a client the transport creates itself. */
  clientConfig(): SESv2ClientConfig
  close(): Promise<void>
}

export const SEND_ROUTE = '/v2/email/outbound-emails'
export const ACCOUNT_ROUTE = '/v2/email/account'
const CREDENTIALS = { accessKeyId: 'AKIAMAILSTREAMTEST', secretAccessKey: 'mailstream-test-secret' }

type Handler = (req: IncomingMessage, res: ServerResponse) => void

/** aws-ses-v2-local in this process on loopback, behind a gate that records requests and injects faults. */
export async function startSesLocal(): Promise<SesLocal> {
  type Start = (config: { host: string; port: number }) => Promise<Server>
  // A CommonJS module: Node puts its exports on `default`, vitest may unwrap it once already.
  const loaded = (await import('aws-ses-v2-local')) as unknown as { default: Start | { default: Start } }
  const start = typeof loaded.default === 'function' ? loaded.default : loaded.default.default
  const server = await start({ host: '127.0.0.1', port: 0 })
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const requests: SeenRequest[] = []
  const faults: { fault: SesFault; route: string }[] = []
  const app = server.listeners('request')[0] as Handler
  server.removeAllListeners('request')
  const held = new Set<ServerResponse>()

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const path = (req.url ?? '/').split('?')[0] as string
      const seen: SeenRequest = { method: req.method ?? 'GET', path, body }
      requests.push(seen)
      const index = faults.findIndex((entry) => entry.route === path)
      if (index >= 0) {
        const { fault } = faults.splice(index, 1)[0] as { fault: SesFault }
        seen.fault = fault
        if ('reset' in fault) {
          req.socket.destroy()
        } else if ('hang' in fault) {
          held.add(res)
          res.on('close', () => held.delete(res))
        } else {
          res.writeHead(fault.status, {
            'content-type': 'application/json',
            ...(fault.type && {
              'x-amzn-errortype': `${fault.type}:http://internal.amazon.com/coral/com.amazonaws.sesv2/`,
            }),
            'x-amzn-requestid': `req-${requests.length}`,
          })
          res.end(JSON.stringify({ message: fault.message }))
        }
        return
      }
      // The body is read: body-parser skips a finished request and keeps req.body.
      if (body) (req as IncomingMessage & { body?: unknown }).body = JSON.parse(body)
      app(req, res)
    })
  })

  const clientConfig = (): SESv2ClientConfig => ({ region: 'eu-west-1', endpoint, credentials: CREDENTIALS })
  return {
    endpoint,
    requests,
    clientConfig,
    fail(fault, times = 1, route = SEND_ROUTE) {
      for (let i = 0; i < times; i++) faults.push({ fault, route })
    },
    sendRequests() {
      return requests
        .filter((request) => request.path === SEND_ROUTE && request.method === 'POST')
        .map((request) => JSON.parse(request.body) as Record<string, unknown>)
    },
    async emails() {
      const response = await fetch(`${endpoint}/store`)
      return ((await response.json()) as { emails: StoredEmail[] }).emails
    },
    async clear() {
      await fetch(`${endpoint}/clear-store`, { method: 'POST' })
      requests.length = 0
      faults.length = 0
    },
    client(config = {}) {
      return new SESv2Client({ maxAttempts: 1, ...clientConfig(), ...config })
    },
    async close() {
      for (const res of held) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
