import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type sanitizeHtml from 'sanitize-html'
import { MailstreamError } from '../errors.js'
import { THREAD_SOURCE } from './markdown-thread.js'
import { type RenderedMarkdown, TEXT_OPTIONS } from './text.js'

/**
 * What survives from Markdown (and HTML written inside it): formatting, links, images and
 * tables. Scripts, styles, frames, forms, event handlers and every URL scheme but http(s) and
 * mailto (so no javascript: or data:) are removed.
 */
const SANITIZE: sanitizeHtml.IOptions = {
  allowedTags: [
    'h1',
    'h2',
    'h3',
    'h4',
    'h5',
    'h6',
    'p',
    'br',
    'hr',
    'blockquote',
    'pre',
    'code',
    'ul',
    'ol',
    'li',
    'strong',
    'em',
    'b',
    'i',
    'u',
    's',
    'del',
    'sup',
    'sub',
    'a',
    'img',
    'table',
    'thead',
    'tbody',
    'tr',
    'th',
    'td',
  ],
  allowedAttributes: {
    a: ['href', 'title'],
    img: ['src', 'alt', 'title', 'width', 'height'],
    th: ['align'],
    td: ['align'],
    ol: ['start'],
  },
  allowedClasses: { table: ['markdown-table'] },
  allowedSchemes: ['http', 'https', 'mailto'],
  allowedSchemesByTag: { img: ['http', 'https'] },
  allowedSchemesAppliedToAttributes: ['href', 'src', 'cite'],
  allowProtocolRelative: false,
  disallowedTagsMode: 'discard',
}

/** The built-in layout's content width (600 px less the card's padding): Markdown images get at most this width. */
export const CONTENT_WIDTH = 520
/** Deeper than this, sanitised Markdown is refused: no newsletter nests 100 quotes, lists or tables. */
const MAX_DEPTH = 100
/** An idle render thread is ended after this; the next Markdown starts a new one. */
const IDLE_MS = 10_000
/** Loading marked, sanitize-html, juice and html-to-text in a new thread takes well under a second. */
const STARTUP_MS = 10_000

export interface MarkdownRenderer {
  /**
   * Markdown to sanitised HTML, with `css` inlined (mail clients drop `<style>`), and its plain text.
   * Rejects with `E_TEMPLATE` when the Markdown cannot be rendered within the time budget.
   */
  render(markdown: string): Promise<RenderedMarkdown>
  /** Starts the render thread ahead of the first render (it ends again when left idle). */
  start(): void
  /**
   * Starts the render thread, renders a first text in it and keeps it from then on, idle or not,
   * until `close()`: the first Markdown of every issue is then as quick as the rest. A thread
   * ended by a text over the budget is replaced by the next text, and kept too.
   */
  warm(): Promise<void>
  /** Ends the render thread; a later render starts a new one. */
  close(): Promise<void>
  /** How many render threads were started so far. */
  readonly started: number
}

interface Task {
  markdown: string
  resolve(value: RenderedMarkdown): void
  reject(reason: unknown): void
}

interface Thread {
  worker: Worker
  ready: boolean
  task?: Task
  /** While starting: the startup bound; while rendering: the budget. Ref'd, so they keep the host alive. */
  timer?: NodeJS.Timeout
}

function resolvePaths() {
  const require = createRequire(import.meta.url)
  return {
    marked: require.resolve('marked'),
    sanitizeHtml: require.resolve('sanitize-html'),
    juice: require.resolve('juice'),
    htmlToText: require.resolve('html-to-text'),
  }
}

/**
 * Renders Markdown in a worker thread, one text at a time, each within `timeoutMs`: hostile input
 * (quadratic emphasis, thousands of nested quotes or tables) costs the thread, never the host's
 * event loop. A text over the budget ends the thread (a new one takes the next text). The thread
 * starts on first use, never keeps the process alive, and ends when idle.
 */
export function createMarkdownRenderer({
  css,
  timeoutMs,
  idleMs = IDLE_MS,
}: {
  css: string
  timeoutMs: number
  /** An idle thread ends after this (default 10 s), unless warmed. */
  idleMs?: number
}): MarkdownRenderer {
  const queue: Task[] = []
  let thread: Thread | undefined
  let idleTimer: NodeJS.Timeout | undefined
  /** Set by `warm()`: the thread is not ended when idle. */
  let kept = false
  let started = 0

  function end(current: Thread): void {
    if (thread === current) thread = undefined
    clearTimeout(current.timer)
    void current.worker.terminate()
  }

  /** The thread died or hung: the text it was rendering fails; one that never started fails everything queued. */
  function fail(current: Thread, reason: MailstreamError): void {
    if (thread !== current) return
    end(current)
    const { task } = current
    current.task = undefined
    if (task) task.reject(reason)
    else for (const queued of queue.splice(0)) queued.reject(reason)
    next()
  }

  function spawn(): Thread {
    started++
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      // Not the host's flags: --input-type=module or a loader would change how the source runs.
      execArgv: [],
      workerData: {
        paths: resolvePaths(),
        sanitizeOptions: SANITIZE,
        textOptions: TEXT_OPTIONS,
        maxDepth: MAX_DEPTH,
        imageWidth: CONTENT_WIDTH,
      },
      // Memory the thread may take from the host, whatever the Markdown.
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    })
    worker.unref()
    const current: Thread = { worker, ready: false }
    const startupMs = Math.max(STARTUP_MS, timeoutMs)
    current.timer = setTimeout(() => {
      fail(current, new MailstreamError('E_TIMEOUT', `the Markdown render thread did not start within ${startupMs} ms`))
    }, startupMs)
    worker.on('message', (message: RenderedMarkdown | { failure: string } | { ready: true }) => {
      if (thread !== current) return
      clearTimeout(current.timer)
      if ('ready' in message) {
        current.ready = true
      } else {
        // Posting a message refs the thread again (Node 20): unref it while it has nothing to do.
        worker.unref()
        const { task } = current
        current.task = undefined
        if ('failure' in message) task?.reject(new MailstreamError('E_TEMPLATE', message.failure))
        else task?.resolve(message)
      }
      next()
    })
    const died = (cause: unknown) => {
      const reason = current.ready
        ? new MailstreamError('E_TEMPLATE', `Markdown cannot be rendered: ${(cause as Error).message}`, { cause })
        : new MailstreamError('E_TIMEOUT', `the Markdown render thread did not start: ${(cause as Error).message}`, {
            cause,
          })
      fail(current, reason)
    }
    worker.on('error', died)
    worker.on('exit', (code) => died(new Error(`the render thread exited with code ${code}`)))
    return current
  }

  function next(): void {
    if (queue.length === 0) {
      if (!kept && thread?.ready && !thread.task) {
        const idle = thread
        clearTimeout(idleTimer)
        idleTimer = setTimeout(() => end(idle), idleMs).unref()
      }
      return
    }
    clearTimeout(idleTimer)
    thread ??= spawn()
    if (!thread.ready || thread.task) return
    const current = thread
    const task = queue.shift() as Task
    current.task = task
    current.timer = setTimeout(() => {
      fail(current, new MailstreamError('E_TEMPLATE', `Markdown took longer than ${timeoutMs} ms to render`))
    }, timeoutMs)
    current.worker.postMessage({ markdown: task.markdown, css })
  }

  function render(markdown: string): Promise<RenderedMarkdown> {
    return new Promise<RenderedMarkdown>((resolve, reject) => {
      queue.push({ markdown, resolve, reject })
      next()
    })
  }

  return {
    render,
    start() {
      thread ??= spawn()
    },
    async warm() {
      kept = true
      clearTimeout(idleTimer)
      await render('warm')
    },
    get started() {
      return started
    },
    async close() {
      kept = false
      clearTimeout(idleTimer)
      const current = thread
      thread = undefined
      const closed = new MailstreamError('E_CLOSED', 'the template renderer was closed')
      if (current?.task) current.task.reject(closed)
      for (const queued of queue.splice(0)) queued.reject(closed)
      if (current) {
        clearTimeout(current.timer)
        await current.worker.terminate()
      }
    },
  }
}

/** A small least-recently-used cache. */
export function createLru<V>(limit: number) {
  const entries = new Map<string, V>()
  return {
    get(key: string): V | undefined {
      const value = entries.get(key)
      if (value !== undefined) {
        entries.delete(key)
        entries.set(key, value)
      }
      return value
    },
    set(key: string, value: V): void {
      entries.delete(key)
      entries.set(key, value)
      if (entries.size > limit) entries.delete(entries.keys().next().value as string)
    },
    delete(key: string): void {
      entries.delete(key)
    },
    get size() {
      return entries.size
    },
  }
}
