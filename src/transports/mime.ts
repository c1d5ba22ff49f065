import type { SendMailOptions } from 'nodemailer'
import type MailComposer from 'nodemailer/lib/mail-composer'
import type { detectMimeType, parseHeaderValue } from 'nodemailer/lib/mime-funcs'
import { MailstreamError } from '../errors.js'
import type { Address, Attachment } from '../job.js'
import type { EmailMessage } from '../transport.js'

/** An address as nodemailer takes it: nodemailer quotes and encodes the name itself. */
const mailbox = (address: Address) =>
  address.name ? { name: address.name, address: address.address } : address.address
const mailboxes = (list: Address[] | undefined) => (list?.length ? list.map(mailbox) : undefined)

/** The parts of nodemailer's `mime-funcs` the attachment headers need (loaded with nodemailer). */
export interface MimeFuncs {
  detectMimeType: typeof detectMimeType
  parseHeaderValue: typeof parseHeaderValue
}

/** A header parameter as a quoted string, which nodemailer reads back and re-encodes as needed. */
const quoted = (value: string) => `"${value.replace(/[\\"]/g, '\\$&')}"`

/** `METHOD:REQUEST` of an iCalendar body: mail clients show invitations by the `method` parameter (RFC 6047). */
function calendarMethod(attachment: Attachment): string | undefined {
  const text = Buffer.from(attachment.content, 'base64').toString('utf8')
  return /^METHOD:([A-Za-z-]{1,40})\r?$/m.exec(text)?.[1]?.toUpperCase()
}

/**
 * Content-Type and Content-Disposition of an attachment, with the file name in both. nodemailer
 * gets the name as a parameter, not as `filename`: given `filename`, it also writes `name=` as a
 * MIME encoded word in quotes, which RFC 2047 forbids inside a parameter and strict parsers read
 * literally; as a parameter, a non-ASCII name goes out in RFC 2231 form (`name*0*=utf-8''...`).
 */
function attachmentHeaders(
  attachment: Attachment,
  mime: MimeFuncs,
): { contentType: string; contentDisposition: string } {
  const extension = attachment.filename.includes('.') ? attachment.filename.split('.').pop() : undefined
  const given = mime.parseHeaderValue(attachment.contentType ?? mime.detectMimeType(extension ?? 'bin'))
  const type = String(given.value).toLowerCase()
  const params = Object.entries(given.params).filter(([key]) => !/^name(\*|$)/i.test(key))
  if (type === 'text/calendar') {
    if (!params.some(([key]) => key.toLowerCase() === 'charset')) params.push(['charset', 'utf-8'])
    const method = params.some(([key]) => key.toLowerCase() === 'method') ? undefined : calendarMethod(attachment)
    if (method) params.push(['method', method])
  }
  params.push(['name', attachment.filename])
  const disposition = attachment.cid !== undefined && type.startsWith('image/') ? 'inline' : 'attachment'
  return {
    contentType: [type, ...params.map(([key, value]) => `${key}=${quoted(String(value))}`)].join('; '),
    contentDisposition: `${disposition}; filename=${quoted(attachment.filename)}`,
  }
}

export interface MimeOptions {
  /** Sender when the message names none. */
  from?: Address
  /** Message-ID header, `<...>` included; nodemailer makes one up when it is not given. */
  messageId?: string
}

/**
 * The nodemailer form of a message, shared by the SMTP transport (`sendMail`) and by the
 * MIME builder below (SES raw sends, preview .eml files). Never reads files or URLs. Lines end
 * in CRLF throughout (bodies included), so that a DKIM body hash survives normalisation.
 */
export function toMailOptions(message: EmailMessage, options: MimeOptions, mime: MimeFuncs): SendMailOptions {
  const from = message.from ?? options.from
  const mail: SendMailOptions = {
    to: mailboxes(message.to),
    subject: message.subject,
    disableFileAccess: true,
    disableUrlAccess: true,
    newline: 'windows',
  }
  if (from) mail.from = mailbox(from)
  const cc = mailboxes(message.cc)
  const bcc = mailboxes(message.bcc)
  const replyTo = mailboxes(message.replyTo)
  if (cc) mail.cc = cc
  if (bcc) mail.bcc = bcc
  if (replyTo) mail.replyTo = replyTo
  if (message.text !== undefined) mail.text = message.text
  if (message.html !== undefined) mail.html = message.html
  if (message.headers) mail.headers = { ...message.headers }
  if (options.messageId) mail.messageId = options.messageId
  if (message.attachments?.length) {
    mail.attachments = message.attachments.map((attachment) => ({
      // The name travels in the headers below (see attachmentHeaders).
      filename: false,
      content: attachment.content,
      encoding: 'base64',
      ...attachmentHeaders(attachment, mime),
      ...(attachment.cid !== undefined && { cid: attachment.cid }),
    }))
  }
  return mail
}

type MailComposerClass = typeof MailComposer
interface Composer {
  MailComposer: MailComposerClass
  mime: MimeFuncs
}
let composer: Promise<Composer> | undefined

/** Loads nodemailer's MIME composer on first use, so that SES users without attachments need no nodemailer. */
function loadMailComposer(transport: string): Promise<Composer> {
  composer ??= Promise.all([import('nodemailer/lib/mail-composer'), import('nodemailer/lib/mime-funcs')]).then(
    ([module, funcs]) => {
      // The ESM build exports the class as default; CJS interop may wrap it once more.
      const loaded = module.default as MailComposerClass | { default: MailComposerClass }
      const mime = (funcs as Partial<MimeFuncs>).detectMimeType
        ? (funcs as MimeFuncs)
        : ((funcs as unknown as { default: MimeFuncs }).default as MimeFuncs)
      return { MailComposer: typeof loaded === 'function' ? loaded : loaded.default, mime }
    },
    (cause: unknown) => {
      composer = undefined
      throw new MailstreamError(
        'E_CONFIG',
        `[mailstream] [${transport}] building a MIME message needs nodemailer: npm install nodemailer`,
        { cause, field: 'nodemailer' },
      )
    },
  )
  return composer
}

/** The whole message as RFC 5322 bytes (no Bcc header: recipients hidden from the others stay hidden). */
export async function composeMime(
  message: EmailMessage,
  options: MimeOptions & { transport: string },
): Promise<Buffer> {
  const { MailComposer: MailComposerClass, mime } = await loadMailComposer(options.transport)
  return new MailComposerClass(toMailOptions(message, options, mime)).compile().build()
}
