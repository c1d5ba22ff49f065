import type { SendMailOptions } from 'nodemailer'
import type MailComposer from 'nodemailer/lib/mail-composer'
import { MailstreamError } from '../errors.js'
import type { Address } from '../job.js'
import type { EmailMessage } from '../transport.js'

/** An address as nodemailer takes it: nodemailer quotes and encodes the name itself. */
const mailbox = (address: Address) =>
  address.name ? { name: address.name, address: address.address } : address.address
const mailboxes = (list: Address[] | undefined) => (list?.length ? list.map(mailbox) : undefined)

export interface MimeOptions {
  /** Sender when the message names none. */
  from?: Address
  /** Message-ID header, `<...>` included; nodemailer makes one up when it is not given. */
  messageId?: string
}

/**
 * The nodemailer form of a message, shared by the SMTP transport (`sendMail`) and by the
 * MIME builder below (SES raw sends, preview .eml files). Never reads files or URLs.
 */
export function toMailOptions(message: EmailMessage, options: MimeOptions = {}): SendMailOptions {
  const from = message.from ?? options.from
  const mail: SendMailOptions = {
    to: mailboxes(message.to),
    subject: message.subject,
    disableFileAccess: true,
    disableUrlAccess: true,
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
      filename: attachment.filename,
      content: attachment.content,
      encoding: 'base64',
      ...(attachment.contentType !== undefined && { contentType: attachment.contentType }),
      ...(attachment.cid !== undefined && { cid: attachment.cid }),
    }))
  }
  return mail
}

type MailComposerClass = typeof MailComposer
let composer: Promise<MailComposerClass> | undefined

/** Loads nodemailer's MIME composer on first use, so that SES users without attachments need no nodemailer. */
function loadMailComposer(transport: string): Promise<MailComposerClass> {
  composer ??= import('nodemailer/lib/mail-composer').then(
    (module) => {
      // The ESM build exports the class as default; CJS interop may wrap it once more.
      const loaded = module.default as MailComposerClass | { default: MailComposerClass }
      return typeof loaded === 'function' ? loaded : loaded.default
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
  const MailComposerClass = await loadMailComposer(options.transport)
  return new MailComposerClass(toMailOptions(message, options)).compile().build()
}
