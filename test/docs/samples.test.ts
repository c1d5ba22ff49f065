// Every ```ts block of README.md and docs/*.md type-checks, as a user's project under `strict` and
// `exactOptionalPropertyTypes` would check it, against the package's types.
//
// Each block is compiled as its own module. A block may use, without declaring them, the names a
// reader has from the docs' setup (`redis`, `queue`, `worker`, `transport`, `templates`, an
// Express `app`, `req` and `res`, ...): CONTEXT below declares them, and the package's factories.
//
// A block that is not TypeScript (a shape written as pseudo-code, a printed result) is skipped
// with an HTML comment on the line right before its fence, which names why:
//   <!-- samples: skip (a printed result, not code) -->
// Keep skips rare: a sample that does not compile is a sample that users copy and that fails.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import ts from 'typescript'
import { beforeAll, describe, expect, test } from 'vitest'

const root = join(import.meta.dirname, '..', '..')
const SKIP_RE = /^<!--\s*samples:\s*skip\s*\((.+)\)\s*-->\s*$/

interface Sample {
  /** `README.md:15`: the file and the line of the opening fence. */
  name: string
  file: string
  /** The line of the opening fence, 1-based. */
  line: number
  code: string
  skip?: string
}

/** The ```ts blocks of one Markdown file. */
function samplesOf(file: string): Sample[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n')
  const samples: Sample[] = []
  for (let index = 0; index < lines.length; index++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[index] as string)) continue
    const start = index
    const body: string[] = []
    for (index++; index < lines.length && !/^```\s*$/.test(lines[index] as string); index++)
      body.push(lines[index] as string)
    const skip = SKIP_RE.exec(lines[start - 1] ?? '')?.[1]
    samples.push({
      name: `${file}:${start + 1}`,
      file,
      line: start + 1,
      code: body.join('\n'),
      ...(skip !== undefined && { skip }),
    })
  }
  return samples
}

const markdown = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
]
const samples = markdown.flatMap(samplesOf)

/** What the docs' setup gives a reader: declared here so that a fragment compiles as it reads. */
const CONTEXT = `
import type * as Mailstream from 'mailstream'
import type * as Ses from 'mailstream/ses'
import type * as Smtp from 'mailstream/smtp'
import type * as Preview from 'mailstream/preview'
import type * as Memory from 'mailstream/memory'
import type * as Dashboard from 'mailstream/dashboard'
import type * as Express from 'express'
import type { Redis } from 'ioredis'
import type { Server } from 'node:http'

declare global {
  // The package's factories, imported once at the top of a reader's module.
  const createEmailQueue: typeof Mailstream.createEmailQueue
  const createEmailWorker: typeof Mailstream.createEmailWorker
  const createTemplateRenderer: typeof Mailstream.createTemplateRenderer
  const createVerificationCodes: typeof Mailstream.createVerificationCodes
  const createRateLimiter: typeof Mailstream.createRateLimiter
  const createSesWebhookHandler: typeof Mailstream.createSesWebhookHandler
  const verifyUnsubscribeToken: typeof Mailstream.verifyUnsubscribeToken
  const batchJobId: typeof Mailstream.batchJobId
  const createSesTransport: typeof Ses.createSesTransport
  const createSmtpTransport: typeof Smtp.createSmtpTransport
  const createPreviewTransport: typeof Preview.createPreviewTransport
  const createMemoryTransport: typeof Memory.createMemoryTransport
  const createDashboard: typeof Dashboard.createDashboard
  const express: typeof Express

  // The setup of docs/getting-started.md.
  const redis: Redis
  const queue: Mailstream.EmailQueue
  const worker: Mailstream.EmailWorker
  const templates: Mailstream.TemplateRenderer
  const transport: Mailstream.Transport & Memory.MemoryTransport & Ses.SesTransport
  const ses: Ses.SesTransport
  const dashboard: Dashboard.Dashboard
  const webhook: Mailstream.SesWebhookHandler
  const server: Server

  // An Express app, and a request being handled.
  const app: Express.Express
  const req: Express.Request
  const res: Express.Response
  const requireAdmin: Express.RequestHandler

  // The reader's own values and services.
  const email: string
  const code: string
  const ip: string
  const token: string
  const secret: string
  const markdown: string
  const event: { mail: { tags: Record<string, string[]> } }
  const issue: { id: string; title: string; markdown: string }
  function activeSubscribers(): AsyncIterable<{ email: string; name: string; locale?: string }>
  const db: {
    activeSubscribers(): AsyncIterable<{ email: string; name: string; locale?: string }>
    emailLog: { insert(row: Record<string, unknown>): Promise<void> }
  }
  const subscribers: {
    streamActive(): AsyncIterable<{ email: string; name: string; locale?: string }>
    unsubscribe(email: string, list?: string): Promise<void>
  }
  const emailLog: { insert(event: Mailstream.SesEvent): Promise<void> }
  const logger: { info(message: string): void; warn(message: string): void }
  function signUp(email: string): Promise<void>
  function verify(email: string, code: string): Promise<Mailstream.VerifyResult>
}
`

const compilerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  lib: ['lib.es2023.d.ts'],
  types: ['node'],
  strict: true,
  exactOptionalPropertyTypes: true,
  esModuleInterop: true,
  skipLibCheck: true,
  noEmit: true,
  baseUrl: root,
  paths: {
    mailstream: ['src/index.ts'],
    'mailstream/dashboard': ['src/dashboard/index.ts'],
    'mailstream/testing': ['src/testing/index.ts'],
    'mailstream/pg': ['src/pg/index.ts'],
    'mailstream/sequences': ['src/sequences/index.ts'],
    'mailstream/*': ['src/transports/*.ts'],
  },
}

const virtualDir = join(root, 'test', 'docs', '.samples')
const fileOf = (sample: Sample) => join(virtualDir, `${sample.name.replace(/[/:.]/g, '_')}.ts`)
// `export {}` makes each block a module: its names are its own, and top-level await works.
const sourceOf = (sample: Sample) => `export {}\n${sample.code}\n`
const contextFile = join(virtualDir, 'context.d.ts')

let program: ts.Program

beforeAll(() => {
  const files = new Map(samples.filter((sample) => !sample.skip).map((sample) => [fileOf(sample), sourceOf(sample)]))
  files.set(contextFile, CONTEXT)
  const host = ts.createCompilerHost(compilerOptions)
  const { getSourceFile, fileExists, readFile } = host
  host.fileExists = (name) => files.has(name) || fileExists.call(host, name)
  host.readFile = (name) => files.get(name) ?? readFile.call(host, name)
  host.getSourceFile = (name, language, ...rest) => {
    const text = files.get(name)
    return text !== undefined
      ? ts.createSourceFile(name, text, language)
      : getSourceFile.call(host, name, language, ...rest)
  }
  // The sources' own ambient modules (.lua and .html imported as text).
  const ambient = [join(root, 'src', 'lua.d.ts'), join(root, 'src', 'templates', 'html.d.ts')]
  program = ts.createProgram([...files.keys(), ...ambient], compilerOptions, host)
}, 120_000)

/** The sample's errors as `README.md:17: TS2345 ...`, at their lines in the Markdown file. */
function errorsOf(sample: Sample): string[] {
  const source = program.getSourceFile(fileOf(sample)) as ts.SourceFile
  const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
  return diagnostics.map((diagnostic) => {
    const { line } = source.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
    // Line 0 is `export {}`; the block's first line is the one after the fence.
    const at = sample.line + line
    return `${sample.file}:${at}: TS${diagnostic.code} ${ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')}`
  })
}

describe('TypeScript samples in README.md and docs/', () => {
  test('there are samples, and few are skipped', () => {
    expect(samples.length).toBeGreaterThan(30)
    expect(samples.filter((sample) => sample.skip).length).toBeLessThanOrEqual(5)
  })

  test.each(samples.map((sample) => [sample.name, sample] as const))('%s compiles', (_name, sample) => {
    if (sample.skip) return
    expect(errorsOf(sample)).toEqual([])
  })
})
