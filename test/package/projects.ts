/**
 * Users' projects, as files: the same TypeScript module sends a templated email through a queue,
 * a worker and the memory transport, then writes it as MIME with the preview transport. A jest 30 +
 * ts-jest project (CommonJS, `module: commonjs`, ts-jest's default preset) and a vitest project
 * (ESM) each run it against the installed tarball.
 */
const SEND = `import { readdirSync } from 'node:fs'
import { Redis } from 'ioredis'
import { createEmailQueue, createEmailWorker, createTemplateRenderer } from 'mailstream'
import { createMemoryTransport } from 'mailstream/memory'
import { createPreviewTransport } from 'mailstream/preview'

export async function templatedSend(dir: string) {
  const redis = new Redis(process.env.REDIS_URL as string)
  const prefix = 'user-' + process.pid + '-' + Date.now()
  const templates = createTemplateRenderer({
    defaults: { brandName: 'Shop' },
    css: '.total { font-weight: bold }',
    templates: {
      receipt: {
        subject: 'Receipt {{orderId}}',
        html: '<h1>Order {{orderId}}</h1><p class="total">{{total}}</p>{{{note}}}',
        required: ['orderId'],
        markdown: ['note'],
      },
    },
  })
  const queue = createEmailQueue({ redis, prefix })
  const transport = createMemoryTransport()
  const worker = createEmailWorker({ redis, prefix, transport, templates, from: 'Shop <shop@example.com>' })
  const failures: string[] = []
  worker.on('failed', ({ error }) => failures.push(String(error)))
  await worker.start()
  try {
    const { id } = await queue.enqueue({
      type: 'receipt',
      to: 'reader@example.com',
      template: 'receipt',
      data: { orderId: '42', total: '9,900', note: 'Thanks for **shopping**.' },
    })
    const sent = await transport.waitFor({ jobId: id }, { timeoutMs: 20_000 }).catch((error: unknown) => {
      throw new Error('not sent: ' + (failures.join('; ') || String(error)))
    })
    const preview = createPreviewTransport({ dir })
    await preview.send(sent.message, { signal: AbortSignal.timeout(10_000), attempt: 1 })
    await preview.close()
    const eml = readdirSync(dir).filter((name) => name.endsWith('.eml'))
    return { subject: sent.message.subject, html: sent.message.html ?? '', text: sent.message.text ?? '', eml, failures }
  } finally {
    await worker.stop()
    await queue.close()
    await templates.close()
    redis.disconnect()
  }
}
`

const TEST_BODY = `test('a templated email is sent with the memory transport and written as MIME', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mailstream-preview-'))
  try {
    const result = await templatedSend(dir)
    expect(result.failures).toEqual([])
    expect(result.subject).toBe('Receipt 42')
    expect(result.html).toMatch(/<p class="total" style="[^"]*font-weight: bold;?">9,900<\\/p>/)
    expect(result.html).toContain('<strong>shopping</strong>')
    expect(result.text).toContain('9,900')
    expect(result.eml).toHaveLength(1)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}, 30_000)
`

const TEST_IMPORTS = `import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { templatedSend } from './send'
`

/** jest 30 with ts-jest's default preset: CommonJS, as `npx ts-jest config:init` writes it. */
export const jestProject: Record<string, string> = {
  'package.json': JSON.stringify({ name: 'user-jest', private: true, scripts: { test: 'jest' } }),
  'jest.config.js': `const { createDefaultPreset } = require('ts-jest')\n\nmodule.exports = {\n  testEnvironment: 'node',\n  ...createDefaultPreset(),\n}\n`,
  // NestJS's default: node10 resolution, where only typesVersions finds the subpaths' types.
  'tsconfig.json': JSON.stringify({
    compilerOptions: {
      module: 'commonjs',
      target: 'ES2022',
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      types: ['jest', 'node'],
    },
  }),
  'src/send.ts': SEND,
  'src/send.test.ts': TEST_IMPORTS + '\n' + TEST_BODY,
}

/** vitest, ESM. */
export const vitestProject: Record<string, string> = {
  // Its own config, so that vitest does not take this repository's from a folder above.
  'vitest.config.js': `export default { test: { include: ['src/**/*.test.ts'] } }\n`,
  'package.json': JSON.stringify({
    name: 'user-vitest',
    private: true,
    type: 'module',
    scripts: { test: 'vitest run' },
  }),
  'tsconfig.json': JSON.stringify({
    compilerOptions: { module: 'nodenext', target: 'ES2022', strict: true, skipLibCheck: true, types: ['node'] },
  }),
  'src/send.ts': SEND,
  'src/send.test.ts':
    `import { expect, test } from 'vitest'\n` + TEST_IMPORTS.replace("'./send'", "'./send.js'") + '\n' + TEST_BODY,
}
