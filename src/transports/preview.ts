import { randomUUID } from 'node:crypto'
import * as nodeFs from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { z } from 'zod'
import { MailstreamError, TransportError, type TransportErrorOptions } from '../errors.js'
import { escapeHtml } from '../html.js'
import { type Address, type AddressInput, formatAddress, parseAddress } from '../job.js'
import { parseOptions } from '../options.js'
import { type EmailMessage, type SendContext, type SendResult, senderOf, type Transport } from '../transport.js'
import { composeMime } from './mime.js'

/** The part of `node:fs/promises` the preview transport uses; give another (an in-memory one) with `fs`. */
export interface PreviewFileSystem {
  mkdir(path: string, options: { recursive: true }): Promise<unknown>
  writeFile(path: string, data: string | Uint8Array, options?: { flag?: string }): Promise<void>
  readFile(path: string, encoding: 'utf8'): Promise<string>
  rename(from: string, to: string): Promise<void>
}

export interface PreviewTransportOptions {
  /** Folder for the files, created when needed. Default `./.mailstream-preview` (from the working directory). */
  dir?: string
  /** Sender for messages that name none. */
  from?: AddressInput
  /** Default `preview`. */
  name?: string
  /** File system to write to. Default `node:fs/promises`. */
  fs?: PreviewFileSystem
}

/** One written message, as listed in index.html and index.json. */
export interface PreviewEntry {
  messageId: string
  jobId: string
  type: string
  subject: string
  from?: string
  to: string[]
  cc: string[]
  bcc: string[]
  /** ISO time of the send. */
  sentAt: string
  /** File names inside `dir`. */
  emlFile: string
  htmlFile: string
  attachments: { filename: string; size: number }[]
}

export interface PreviewTransport extends Transport {
  /** Absolute path of the folder. */
  readonly dir: string
  /** Absolute path of index.html. */
  readonly indexPath: string
  /** Every message in the folder's index (earlier runs included), newest first. */
  list(): Promise<PreviewEntry[]>
  /** Waits for the index to be written. */
  close(): Promise<void>
}

const optionsSchema = z.strictObject({
  dir: z.string().min(1).default('.mailstream-preview'),
  from: z
    .custom<AddressInput>((value) => parseAddress(value as AddressInput) !== null, {
      message: 'must be an email address like a@example.com or "Name <a@example.com>"',
    })
    .optional(),
  name: z.string().min(1).max(100).default('preview'),
  fs: z
    .custom<PreviewFileSystem>(
      (value) =>
        typeof value === 'object' &&
        value !== null &&
        ['mkdir', 'writeFile', 'readFile', 'rename'].every(
          (method) => typeof (value as unknown as Record<string, unknown>)[method] === 'function',
        ),
      { message: 'must have mkdir, writeFile, readFile and rename like node:fs/promises' },
    )
    .optional(),
})

const PREFIX = '[mailstream] [preview]'
const INDEX_JSON = 'index.json'
const INDEX_HTML = 'index.html'
const SAFE_FILE_RE = /^[A-Za-z0-9_-]{1,200}\.(?:eml|html)$/
/** Errors a person has to fix (permissions, a file where the folder should be). */
const NEVER_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG'])
/** Too many open files: slow down rather than use up attempts. */
const THROTTLE_CODES = new Set(['EMFILE', 'ENFILE'])

/** `20260125-101112-345`: UTC, sorts by time. */
function stamp(date: Date): string {
  const iso = date.toISOString() // 2026-01-25T10:11:12.345Z
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${iso.slice(20, 23)}`
}

/** A job id as a file name part: only A-Z a-z 0-9 _ -, so no path can be smuggled in. */
function safeName(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 100) || 'message'
}

function toTransportError(error: unknown): TransportError {
  if (error instanceof TransportError) return error
  const code = (error as { code?: unknown })?.code
  const text = error instanceof Error ? error.message.replace(/^\[mailstream\]\s*/, '') : String(error)
  const retry: TransportErrorOptions['retry'] =
    error instanceof MailstreamError
      ? 'never'
      : typeof code === 'string' && THROTTLE_CODES.has(code)
        ? 'throttle'
        : typeof code === 'string' && NEVER_CODES.has(code)
          ? 'never'
          : 'later'
  return new TransportError(`${PREFIX} ${text}`, {
    retry,
    cause: error,
    ...(typeof code === 'string' && { statusCode: code }),
  })
}

/** File names start with the time, then the job id: newest first is descending order. */
const newestFirst = (entries: PreviewEntry[]) => entries.slice().sort((a, b) => (a.emlFile < b.emlFile ? 1 : -1))

const show = (list: Address[] | undefined) => (list ?? []).map(formatAddress)
const bare = (list: Address[] | undefined) => (list ?? []).map((address) => address.address)

function isEntry(value: unknown): value is PreviewEntry {
  const entry = value as PreviewEntry
  return (
    typeof entry === 'object' &&
    entry !== null &&
    typeof entry.messageId === 'string' &&
    typeof entry.subject === 'string' &&
    typeof entry.sentAt === 'string' &&
    SAFE_FILE_RE.test(String(entry.emlFile)) &&
    SAFE_FILE_RE.test(String(entry.htmlFile)) &&
    Array.isArray(entry.to)
  )
}

function messagePage(message: EmailMessage, entry: PreviewEntry): string {
  const rows: [string, string][] = [
    ['From', entry.from ?? ''],
    ['To', show(message.to).join(', ')],
  ]
  if (message.cc?.length) rows.push(['Cc', show(message.cc).join(', ')])
  if (message.bcc?.length) rows.push(['Bcc', show(message.bcc).join(', ')])
  if (message.replyTo?.length) rows.push(['Reply-To', show(message.replyTo).join(', ')])
  rows.push(['Date', entry.sentAt], ['Job', `${message.jobId} (${message.type})`])
  for (const [name, value] of Object.entries(message.headers ?? {})) rows.push([name, value])
  const attachments = entry.attachments.length
    ? `<h2>Attachments</h2><ul>${entry.attachments
        .map((attachment) => `<li>${escapeHtml(attachment.filename)} (${attachment.size} bytes)</li>`)
        .join('')}</ul>`
    : ''
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src * data:">
<title>${escapeHtml(message.subject)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#222}dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{color:#666}dd{margin:0}iframe{width:100%;height:70vh;border:1px solid #ccc}pre{white-space:pre-wrap;background:#f6f6f6;padding:1rem}</style>
</head>
<body>
<p><a href="${INDEX_HTML}">All messages</a> · <a href="${escapeHtml(entry.emlFile)}">Download .eml</a></p>
<h1>${escapeHtml(message.subject)}</h1>
<dl>${rows.map(([name, value]) => `<dt>${escapeHtml(name)}</dt><dd>${escapeHtml(value)}</dd>`).join('')}</dl>
${message.html !== undefined ? `<h2>HTML</h2><iframe sandbox title="HTML body" srcdoc="${escapeHtml(message.html)}"></iframe>` : ''}
${message.text !== undefined ? `<h2>Text</h2><pre>${escapeHtml(message.text)}</pre>` : ''}
${attachments}
</body>
</html>
`
}

function indexPage(entries: PreviewEntry[]): string {
  const rows = entries
    .map(
      (entry) =>
        `<tr><td>${escapeHtml(entry.sentAt)}</td><td><a href="${escapeHtml(entry.htmlFile)}">${escapeHtml(entry.subject)}</a></td>` +
        `<td>${escapeHtml(entry.to.join(', '))}</td><td>${escapeHtml(entry.type)}</td><td>${escapeHtml(entry.jobId)}</td>` +
        `<td><a href="${escapeHtml(entry.emlFile)}">.eml</a></td></tr>`,
    )
    .join('\n')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>mailstream preview (${entries.length})</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#222}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #eee}</style>
</head>
<body>
<h1>mailstream preview</h1>
<p>${entries.length} message${entries.length === 1 ? '' : 's'}, newest first.</p>
<table>
<thead><tr><th>Time</th><th>Subject</th><th>To</th><th>Type</th><th>Job</th><th></th></tr></thead>
<tbody>
${rows}
</tbody>
</table>
</body>
</html>
`
}

/**
 * Writes each message into a folder, as `<time>-<job id>.eml` (the MIME message) and `.html`
 * (a page to read it), and keeps `index.html` listing them newest first. For local
 * development: nothing is sent, nothing is printed.
 */
export function createPreviewTransport(options: PreviewTransportOptions = {}): PreviewTransport {
  const config = parseOptions(optionsSchema, options, 'createPreviewTransport')
  const fs: PreviewFileSystem = config.fs ?? nodeFs
  const dir = resolve(config.dir)
  const indexPath = join(dir, INDEX_HTML)
  const defaultFrom = config.from !== undefined ? (parseAddress(config.from) as Address) : undefined
  let entries: PreviewEntry[] | undefined
  let loading: Promise<PreviewEntry[]> | undefined
  let lastWrite: Promise<void> = Promise.resolve()
  let queuedWrite: Promise<void> | undefined

  /** The index of earlier runs, read once; a missing or unreadable index starts a new one. */
  function load(): Promise<PreviewEntry[]> {
    if (entries) return Promise.resolve(entries)
    loading ??= (async () => {
      await fs.mkdir(dir, { recursive: true })
      let previous: PreviewEntry[] = []
      try {
        const parsed: unknown = JSON.parse(await fs.readFile(join(dir, INDEX_JSON), 'utf8'))
        if (Array.isArray(parsed)) previous = parsed.filter(isEntry)
      } catch {
        // no index yet, or not one of ours
      }
      entries = previous
      return previous
    })().finally(() => {
      loading = undefined
    })
    return loading
  }

  async function writeAtomically(file: string, data: string): Promise<void> {
    const temporary = join(dir, `.${file}.${process.pid}.${randomUUID()}.tmp`)
    await fs.writeFile(temporary, data)
    await fs.rename(temporary, join(dir, file))
  }

  /**
   * Rewrites index.json and index.html after the entries added so far. Calls made while a
   * write is waiting share it, so a burst of sends costs one or two rewrites, not one each.
   */
  function refreshIndex(): Promise<void> {
    if (queuedWrite) return queuedWrite
    const write = lastWrite
      .catch(() => {})
      .then(async () => {
        queuedWrite = undefined
        const snapshot = newestFirst(entries ?? [])
        await writeAtomically(INDEX_JSON, `${JSON.stringify(snapshot, null, 1)}\n`)
        await writeAtomically(INDEX_HTML, indexPage(snapshot))
      })
    queuedWrite = write
    lastWrite = write
    return write
  }

  /** Writes `data` to the first free `<base><suffix>.<extension>`; returns the file name. */
  async function writeNew(base: string, extension: string, data: string | Uint8Array): Promise<string> {
    for (let copy = 1; ; copy++) {
      const file = `${base}${copy === 1 ? '' : `-${copy}`}.${extension}`
      const path = join(dir, file)
      if (dirname(path) !== dir) throw new MailstreamError('E_VALIDATION', `${PREFIX} unsafe file name ${file}`)
      try {
        await fs.writeFile(path, data, { flag: 'wx' })
        return file
      } catch (error) {
        if ((error as { code?: string }).code !== 'EEXIST' || copy >= 100) throw error
      }
    }
  }

  return {
    name: config.name,
    dir,
    indexPath,

    async send(message: EmailMessage, context: SendContext): Promise<SendResult> {
      try {
        if (context.signal.aborted) throw new TransportError(`${PREFIX} send aborted`, { retry: 'later' })
        const list = await load()
        const sentAt = new Date()
        const messageId = `<${randomUUID()}@preview.mailstream>`
        const from = senderOf(message, defaultFrom, PREFIX)
        const eml = await composeMime(message, { from, messageId, transport: 'preview' })
        const emlFile = await writeNew(`${stamp(sentAt)}-${safeName(message.jobId)}`, 'eml', eml)
        const entry: PreviewEntry = {
          messageId,
          jobId: message.jobId,
          type: message.type,
          subject: message.subject,
          ...(from && { from: formatAddress(from) }),
          to: bare(message.to),
          cc: bare(message.cc),
          bcc: bare(message.bcc),
          sentAt: sentAt.toISOString(),
          emlFile,
          htmlFile: emlFile.replace(/\.eml$/, '.html'),
          attachments: (message.attachments ?? []).map((attachment) => ({
            filename: attachment.filename,
            size: Buffer.byteLength(attachment.content, 'base64'),
          })),
        }
        await fs.writeFile(join(dir, entry.htmlFile), messagePage(message, entry))
        list.push(entry)
        await refreshIndex()
        return { messageId }
      } catch (error) {
        throw toTransportError(error)
      }
    },

    async list() {
      return newestFirst(await load())
    },

    async close() {
      await lastWrite.catch(() => {})
    },
  }
}
