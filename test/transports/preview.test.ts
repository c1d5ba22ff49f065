import * as nodeFs from 'node:fs/promises'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeEach, describe, expect, test, vi } from 'vitest'
import { type EmailMessage, TransportError } from '../../src/index.js'
import { createPreviewTransport, type PreviewFileSystem } from '../../src/transports/preview.js'
import { receivedFromMime } from '../helpers/mime.js'
import { harness } from '../helpers/queue.js'
import { connect } from '../helpers/redis.js'
import { transportContract } from './contract.js'

const errno = (code: string) => Object.assign(new Error(`${code}: injected, write`), { code, syscall: 'write' })

/** node:fs/promises, except that queued errors are thrown by the next writes. */
function failingFs(): PreviewFileSystem & { failures: Error[] } {
  const failures: Error[] = []
  return {
    failures,
    mkdir: nodeFs.mkdir,
    readFile: nodeFs.readFile,
    rename: nodeFs.rename,
    async writeFile(path, data, options) {
      const failure = failures.shift()
      if (failure) throw failure
      await nodeFs.writeFile(path, data, options)
    },
  }
}

const roots: string[] = []
afterAll(async () => {
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })))
})
async function tempRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'mailstream-preview-'))
  roots.push(root)
  return root
}

transportContract('preview', async () => {
  const dir = join(await tempRoot(), 'preview')
  const fs = failingFs()
  const transport = createPreviewTransport({ dir, fs })
  return {
    transport,
    async received(_message, messageId) {
      const entry = (await transport.list()).find((candidate) => candidate.messageId === messageId)
      if (!entry) throw new Error(`the preview index has no message ${messageId}`)
      // The .eml has no Bcc header (as sent mail would not); the index keeps the Bcc recipients.
      return receivedFromMime(await readFile(join(transport.dir, entry.emlFile)), entry.bcc)
    },
    failNext(kind) {
      fs.failures.push(errno(kind === 'throttle' ? 'EMFILE' : kind === 'later' ? 'ENOSPC' : 'EACCES'))
    },
  }
})

let sequence = 0
function message(overrides: Partial<EmailMessage> = {}): EmailMessage {
  sequence++
  return {
    jobId: `preview-${sequence}`,
    type: 'welcome',
    priority: 'normal',
    from: { address: 'noreply@example.com' },
    to: [{ address: `reader${sequence}@example.com` }],
    subject: `Preview ${sequence}`,
    text: 'Hello',
    ...overrides,
  }
}
const context = (signal = new AbortController().signal) => ({ signal, attempt: 1 })
const FILE_RE = /^\d{8}-\d{6}-\d{3}-[A-Za-z0-9_-]+\.(?:eml|html)$/

describe('preview transport', () => {
  let root: string
  let dir: string
  beforeEach(async () => {
    root = await tempRoot()
    dir = join(root, 'preview')
  })

  test('writes <time>-<job id>.eml and .html, and index.html lists them newest first with links', async () => {
    const transport = createPreviewTransport({ dir })
    expect(transport.dir).toBe(dir)
    expect(transport.indexPath).toBe(join(dir, 'index.html'))
    for (let i = 0; i < 3; i++) {
      await transport.send(message({ jobId: `job-${i}`, subject: `Issue ${i}`, html: `<p>Issue ${i}</p>` }), context())
      await new Promise((done) => setTimeout(done, 2)) // distinct milliseconds in the file names
    }
    const files = (await readdir(dir)).filter((file) => file !== 'index.html' && file !== 'index.json')
    expect(files).toHaveLength(6)
    for (const file of files) expect(file).toMatch(FILE_RE)
    const emls = files.filter((file) => file.endsWith('.eml')).sort()
    expect(emls.map((file) => file.replace(/^.*?-(job-\d)\.eml$/, '$1'))).toEqual(['job-0', 'job-1', 'job-2'])

    const index = await readFile(transport.indexPath, 'utf8')
    const subjects = [...index.matchAll(/>(Issue \d)</g)].map((match) => match[1])
    expect(subjects).toEqual(['Issue 2', 'Issue 1', 'Issue 0'])
    for (const file of files) expect(index).toContain(`href="${file}"`)
    const entries = await transport.list()
    expect(entries.map((entry) => entry.jobId)).toEqual(['job-2', 'job-1', 'job-0'])
    expect(entries[0]).toMatchObject({
      subject: 'Issue 2',
      to: [expect.stringMatching(/@example\.com$/)],
      type: 'welcome',
    })
    const page = await readFile(join(dir, entries[0]?.htmlFile as string), 'utf8')
    expect(page).toContain('<iframe sandbox')
    expect(page).toContain('&lt;p&gt;Issue 2&lt;/p&gt;')
  })

  test('escapes every value it shows', async () => {
    const transport = createPreviewTransport({ dir })
    const evil = '<script>alert("x")</script> & \'quotes\''
    await transport.send(
      message({
        jobId: 'evil"job',
        subject: evil,
        to: [{ name: '<img src=x onerror=alert(1)>', address: 'a@example.com' }],
        html: '<script>alert(1)</script><p onclick="x()">hi</p>',
        text: '</pre><script>alert(2)</script>',
        headers: { 'X-Note': '<b>bold</b>' },
        attachments: [{ filename: '<evil>.txt', content: Buffer.from('x').toString('base64') }],
      }),
      context(),
    )
    const [entry] = await transport.list()
    const page = await readFile(join(dir, entry?.htmlFile as string), 'utf8')
    const index = await readFile(transport.indexPath, 'utf8')
    for (const html of [page, index]) {
      expect(html).not.toMatch(/<script/i)
      expect(html).not.toMatch(/<img/i)
      expect(html).not.toContain('<evil>')
    }
    expect(index).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quotes&#39;')
    expect(page).toContain('&lt;b&gt;bold&lt;/b&gt;')
  })

  test('job ids cannot lead files out of the folder', async () => {
    const transport = createPreviewTransport({ dir })
    for (const jobId of ['../../escaped', '..\\..\\escaped', '/etc/passwd', '..', 'a/../../b', '.hidden']) {
      await transport.send(message({ jobId }), context())
    }
    expect(await readdir(root)).toEqual(['preview'])
    const files = (await readdir(dir)).filter((file) => file !== 'index.html' && file !== 'index.json')
    expect(files).toHaveLength(12)
    for (const file of files) expect(file).toMatch(FILE_RE)
  })

  test('keeps the messages of earlier runs and drops index entries that are not its own', async () => {
    const first = createPreviewTransport({ dir })
    await first.send(message({ subject: 'From the first run' }), context())
    await first.close()
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'))
    index.push({ ...index[0], messageId: 'forged', emlFile: '../../outside.eml' })
    await writeFile(join(dir, 'index.json'), JSON.stringify(index))

    const second = createPreviewTransport({ dir })
    await second.send(message({ subject: 'From the second run' }), context())
    expect((await second.list()).map((entry) => entry.subject)).toEqual(['From the second run', 'From the first run'])
    expect(await readFile(second.indexPath, 'utf8')).toContain('From the first run')

    await writeFile(join(dir, 'index.json'), 'not json')
    const third = createPreviewTransport({ dir })
    expect(await third.list()).toEqual([])
  })

  test('parallel sends all reach the index', async () => {
    const transport = createPreviewTransport({ dir })
    await Promise.all(Array.from({ length: 25 }, (_, i) => transport.send(message({ jobId: `p-${i}` }), context())))
    await transport.close()
    expect(await transport.list()).toHaveLength(25)
    expect(JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'))).toHaveLength(25)
    expect((await readFile(transport.indexPath, 'utf8')).match(/<tr><td>/g)).toHaveLength(25)
  })

  test('prints nothing, defaults to ./.mailstream-preview and writes nothing for an aborted send', async () => {
    const fallback = createPreviewTransport()
    expect(fallback.dir).toBe(resolve('.mailstream-preview'))
    expect(fallback.indexPath).toBe(resolve('.mailstream-preview', 'index.html'))

    const log = vi.spyOn(console, 'log')
    const stdout = vi.spyOn(process.stdout, 'write')
    const transport = createPreviewTransport({ dir })
    await transport.send(message(), context())
    expect(log).not.toHaveBeenCalled()
    expect(stdout).not.toHaveBeenCalled()
    vi.restoreAllMocks()

    const controller = new AbortController()
    controller.abort()
    const error = await transport.send(message(), context(controller.signal)).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(TransportError)
    expect(error).toMatchObject({ retry: 'later' })
    expect(await transport.list()).toHaveLength(1)
  })

  test('a worker writes its jobs into the folder', async () => {
    const { queue, worker, settled } = harness(connect())
    const transport = createPreviewTransport({ dir })
    await worker({ transport }).start()
    const { id } = await queue.enqueue({
      type: 'welcome',
      to: 'reader@example.com',
      subject: '환영합니다',
      text: '안녕',
    })
    const state = await settled(id)
    expect(state.status).toBe('sent')
    const [entry] = await transport.list()
    expect(entry).toMatchObject({ jobId: id, messageId: state.messageId, subject: '환영합니다' })
    expect(entry?.from).toBe('Mailstream <noreply@example.com>')
  })
})
