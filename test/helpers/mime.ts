import { type AddressObject, simpleParser } from 'mailparser'
import type { ReceivedMessage } from '../transports/contract.js'

const addresses = (value: AddressObject | AddressObject[] | undefined): string[] =>
  (Array.isArray(value) ? value : value ? [value] : [])
    .flatMap((object) => object.value)
    .map((address) => (address.address ?? '').toLowerCase())

/** Parses a MIME message with mailparser into what the contract suite compares. */
export async function receivedFromMime(raw: Buffer | string, bcc?: string[]): Promise<ReceivedMessage> {
  const parsed = await simpleParser(raw)
  const headers: Record<string, string> = {}
  for (const [name, value] of parsed.headers) if (typeof value === 'string') headers[name.toLowerCase()] = value
  const from = addresses(parsed.from)[0]
  return {
    ...(from !== undefined && { from }),
    to: addresses(parsed.to),
    cc: addresses(parsed.cc),
    ...(bcc !== undefined && { bcc: bcc.map((address) => address.toLowerCase()) }),
    replyTo: addresses(parsed.replyTo),
    subject: parsed.subject ?? '',
    ...(parsed.text !== undefined && { text: parsed.text }),
    ...(typeof parsed.html === 'string' && { html: parsed.html }),
    headers,
    attachments: parsed.attachments.map((attachment) => ({
      filename: attachment.filename ?? '',
      content: attachment.content,
      contentType: attachment.contentType,
    })),
  }
}
