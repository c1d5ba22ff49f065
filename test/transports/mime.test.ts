import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { EmailMessage } from '../../src/index.js'
import { composeMime } from '../../src/transports/mime.js'
import { createPreviewTransport } from '../../src/transports/preview.js'
import { createSesTransport } from '../../src/transports/ses.js'
import { createSmtpTransport } from '../../src/transports/smtp.js'
import { type SesLocal, startSesLocal } from '../helpers/ses-local.js'
import { type SmtpLocal, startSmtpLocal } from '../helpers/smtp-local.js'

const base64 = (text: string) => Buffer.from(text).toString('base64')
const INVITE =
  'BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:밋업\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'

/** Multi-line bodies with bare LF, a Korean attachment name and an invitation: what used to come out mixed. */
const message = (jobId: string): EmailMessage => ({
  jobId,
  type: 'newsletter',
  priority: 'normal',
  from: { name: '밸리티', address: 'news@vality.kr' },
  to: [{ address: 'reader@example.com' }],
  subject: '5월 소식',
  text: '안녕하세요\n\n이번 호 소식입니다.\n- 하나\n- 둘\n',
  html: '<p>안녕하세요</p>\n<p>이번 호 소식입니다.</p>\n<ul>\n<li>하나</li>\n</ul>\n',
  attachments: [
    { filename: '보고서 "2026" 5월.pdf', content: base64('%PDF-1.4 report') },
    { filename: 'meetup.ics', content: base64(INVITE), contentType: 'text/calendar' },
    { filename: 'plain.csv', content: base64('a,b\n1,2\n') },
  ],
})

const bareLineFeeds = (raw: Buffer) => (raw.toString('latin1').match(/(?<!\r)\n/g) ?? []).length
const unfoldedHeaders = (raw: Buffer) => raw.toString('latin1').replace(/\r\n[ \t]+/g, ' ')

/** What every built message must satisfy, whichever transport built it. */
async function expectWellFormed(raw: Buffer): Promise<void> {
  expect(bareLineFeeds(raw)).toBe(0)
  expect(raw.toString('latin1')).toContain('\r\n')
  const headers = unfoldedHeaders(raw)
  // RFC 2047 forbids encoded words inside a quoted parameter: the name goes in RFC 2231 form.
  expect(headers).not.toMatch(/name="?=\?/i)
  expect(headers).toMatch(/Content-Type: application\/pdf; name\*0\*=utf-8''%EB%B3%B4/)
  expect(headers).toMatch(/Content-Disposition: attachment; filename\*0\*=utf-8''%EB%B3%B4/)
  expect(headers).toMatch(/Content-Type: text\/calendar; charset=utf-8; method=REQUEST; name=meetup\.ics/)
  expect(headers).toMatch(/Content-Type: text\/csv; name=plain\.csv/)
  const parsed = await simpleParser(raw)
  expect(parsed.attachments.map((attachment) => attachment.filename)).toEqual([
    '보고서 "2026" 5월.pdf',
    'meetup.ics',
    'plain.csv',
  ])
  expect(parsed.attachments[1]?.content.toString('utf8')).toBe(INVITE)
  expect(parsed.text?.replace(/\r\n/g, '\n')).toContain('이번 호 소식입니다.\n- 하나')
}

describe('every built MIME message', () => {
  let smtp: SmtpLocal
  let ses: SesLocal
  let dir: string
  beforeAll(async () => {
    smtp = await startSmtpLocal()
    ses = await startSesLocal()
    dir = await mkdtemp(join(tmpdir(), 'mailstream-mime-'))
  })
  afterAll(async () => {
    await smtp?.close()
    await ses?.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('the shared builder', async () => {
    await expectWellFormed(await composeMime(message('mime-1'), { transport: 'test' }))
  })

  test('SES raw content', async () => {
    const transport = createSesTransport({ clientConfig: ses.clientConfig() })
    await transport.send(message('mime-ses'), { signal: new AbortController().signal, attempt: 1 })
    const request = ses.sendRequests().at(-1) as { Content: { Raw: { Data: string } } }
    await expectWellFormed(Buffer.from(request.Content.Raw.Data, 'base64'))
    await transport.close()
  })

  test('the preview .eml file', async () => {
    const transport = createPreviewTransport({ dir })
    await transport.send(message('mime-preview'), { signal: new AbortController().signal, attempt: 1 })
    const [entry] = await transport.list()
    await expectWellFormed(await readFile(join(dir, entry?.emlFile as string)))
    await transport.close()
  })

  test('over SMTP, as the server receives it', async () => {
    const transport = createSmtpTransport({ options: { host: '127.0.0.1', port: smtp.port, secure: false } })
    const { messageId } = await transport.send(message('mime-smtp'), {
      signal: new AbortController().signal,
      attempt: 1,
    })
    await expectWellFormed(smtp.delivery(messageId)?.raw as Buffer)
    await transport.close()
  })

  test('a calendar type of your own keeps its method; a name in it is replaced by the file name', async () => {
    const raw = await composeMime(
      {
        ...message('mime-2'),
        attachments: [
          { filename: 'cancel.ics', content: base64(INVITE), contentType: 'text/calendar; method=CANCEL; name=x.ics' },
        ],
      },
      { transport: 'test' },
    )
    expect(unfoldedHeaders(raw)).toMatch(/Content-Type: text\/calendar; method=CANCEL; charset=utf-8; name=cancel\.ics/)
  })
})
