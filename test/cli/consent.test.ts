import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { main } from '../../src/cli/index.js'
import { createEmailQueue } from '../../src/index.js'
import { connect, redisUrl, uniquePrefix } from '../helpers/redis.js'

// The command's code run in this process (main() as bin.ts calls it), against the run's Redis.
const redis = connect()
const dir = mkdtempSync(join(tmpdir(), 'mailstream-consent-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const DAY = 86_400_000
const MONTH = 30.5 * DAY

async function run(args: string[]): Promise<{ code: number; output: string }> {
  const printed: string[] = []
  const code = await main(args, (text) => printed.push(text))
  return { code, output: printed.join('\n') }
}

describe('mailstream consent', () => {
  // Due in about 10 days, due now, and not for a year.
  const consents = () => [
    { address: 'soon@example.com', consentedAt: new Date(Date.now() - 23 * MONTH + 10 * DAY).toISOString() },
    { address: 'now@example.com', consentedAt: Date.now() - 23 * MONTH - 5 * DAY },
    { address: 'later@example.com', consentedAt: Date.now() - 11 * MONTH },
  ]

  test('due --days 30 over a JSON file: what falls due, soonest first; --json the same rows', async () => {
    const file = join(dir, 'consents.json')
    writeFileSync(file, JSON.stringify(consents()))
    const text = await run(['consent', 'due', '--days', '30', '--store', file])
    expect(text.code).toBe(0)
    const lines = text.output.split('\n')
    expect(lines[0]).toMatch(/^address\s+consented\s+last reminder\s+due\s+deadline\s+in$/)
    expect(lines[2]).toMatch(/^now@example\.com\s.*due now$/)
    expect(lines[3]).toMatch(/^soon@example\.com\s.*\s([5-9]|1[0-5]) d$/)
    expect(text.output).not.toContain('later@example.com')
    const json = await run(['consent', 'due', '--days', '3', '--json', '--store', file])
    expect(JSON.parse(json.output).consents.map((one: { address: string }) => one.address)).toEqual(['now@example.com'])
  })

  test('due over an NDJSON file and over a store module', async () => {
    const ndjson = join(dir, 'consents.ndjson')
    writeFileSync(
      ndjson,
      `${consents()
        .map((one) => JSON.stringify(one))
        .join('\n')}\n`,
    )
    expect((await run(['consent', 'due', '--store', ndjson])).output).toContain('soon@example.com')
    const module = join(dir, 'store.mjs')
    writeFileSync(
      module,
      `const consents = ${JSON.stringify(consents())}
export default { async listConsents() { return { consents } }, async markReminded() {} }`,
    )
    const viaModule = await run(['consent', 'due', '--days', '30', '--store', module])
    expect(viaModule.code).toBe(0)
    expect(viaModule.output).toContain('now@example.com')
  })

  test('remind --store MODULE enqueues the reminders due now, once', async () => {
    const prefix = uniquePrefix('consent')
    const module = join(dir, 'remind.mjs')
    writeFileSync(
      module,
      `const rows = ${JSON.stringify(consents())}
export const marked = []
export default {
  store: {
    async listConsents() { return { consents: rows } },
    async markReminded(address, at) {
      const row = rows.find((one) => one.address === address)
      row.lastReminderAt = at.getTime()
    },
  },
  sender: { name: 'Vality' },
  links: { secret: 'consent-secret-0123456789', url: 'https://vality.kr/consent' },
}`,
    )
    const args = ['consent', 'remind', '--store', module, '--redis', redisUrl(), '--prefix', prefix]
    const first = await run(args)
    expect(first).toEqual({ code: 0, output: 'enqueued 1, already enqueued 0, not due 2' })
    // The module is loaded once per process: its rows now carry lastReminderAt.
    expect((await run(args)).output).toBe('enqueued 0, already enqueued 0, not due 3')
    const queue = createEmailQueue({ redis, prefix })
    expect((await queue.stats()).streams.low?.length).toBe(1)
    await queue.close()
  })

  test('usage mistakes: no --store, a missing file, a file for remind, a bad --days', async () => {
    const file = join(dir, 'consents.json')
    writeFileSync(file, JSON.stringify(consents()))
    expect((await run(['consent', 'due'])).code).toBe(2)
    expect((await run(['consent', 'due', '--store', join(dir, 'nope.json')])).code).toBe(2)
    expect((await run(['consent', 'due', '--store', file, '--days=-1'])).code).toBe(2)
    expect((await run(['consent', 'remind', '--store', file, '--redis', redisUrl()])).code).toBe(2)
    const help = await run(['consent', '--help'])
    expect(help.output).toContain('consent due --store FILE [--days N]')
  })
})
