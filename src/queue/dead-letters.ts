// The dead-letter stream `P:dead`: list, retry with fresh attempts, purge.
import { MailstreamError } from '../errors.js'
import { parseJob, recipientList } from '../job.js'
import { retryDead } from '../lua/retry-dead.js'
import type { DeadLetter, DeadLetters, QueueContext } from './types.js'

const PAGE = 1000

function fieldsToObject(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i] as string] = fields[i + 1] as string
  return out
}

/** One entry of the dead stream as a letter; `job` is null when the entry holds no readable job. */
export function parseDeadEntry(entryId: string, fields: string[]): DeadLetter {
  const record = fieldsToObject(fields)
  return {
    entryId,
    id: record.id ?? '',
    job: parseJob(record.job),
    error: record.error ?? '',
    attempts: Number(record.attempts ?? 0),
    failedAt: Number(record.time ?? 0),
  }
}

export function createDeadLetters(context: QueueContext, checkId: (id: unknown, field: string) => string): DeadLetters {
  const { client, steps, keys, assertOpen } = context

  /** Dead letters that match, read in pages on `steps` (each page bounded). */
  async function find(predicate: (letter: DeadLetter) => boolean): Promise<DeadLetter[]> {
    const found: DeadLetter[] = []
    let start = '-'
    for (;;) {
      const page = await steps.xrange(keys.dead, start, '+', 'COUNT', PAGE)
      for (const [entryId, fields] of page) {
        const letter = parseDeadEntry(entryId, fields)
        if (predicate(letter)) found.push(letter)
      }
      if (page.length < PAGE) return found
      start = `(${(page[page.length - 1] as [string, string[]])[0]}`
    }
  }

  return {
    async list({ count = 50 } = {}) {
      assertOpen()
      if (!Number.isInteger(count) || count < 1 || count > 10_000) {
        throw new MailstreamError('E_VALIDATION', 'count: must be an integer from 1 to 10000', { field: 'count' })
      }
      const entries = await client.xrevrange(keys.dead, '+', '-', 'COUNT', count)
      return entries.map(([entryId, fields]) => parseDeadEntry(entryId, fields))
    },

    async retry(target) {
      assertOpen()
      const all = typeof target === 'object' && target !== null && (target as { all?: unknown }).all === true
      const id = all ? '' : checkId(target, 'target')
      let moved = 0
      for (const { entryId, job } of await find((letter) => all || letter.id === id)) {
        // A poison entry has nothing to send; purge it instead.
        if (job && (await retryDead(steps, keys, { entryId, job, rcpt: recipientList(job), now: Date.now() }))) moved++
      }
      return moved
    },

    async purge({ before } = {}) {
      assertOpen()
      if (before === undefined) {
        const length = await client.xlen(keys.dead)
        await client.del(keys.dead)
        return length
      }
      const cutoff = before instanceof Date ? before.getTime() : before
      if (typeof cutoff !== 'number' || !Number.isFinite(cutoff)) {
        throw new MailstreamError('E_VALIDATION', 'before: must be a Date or epoch ms', { field: 'before' })
      }
      // Dead entries are only ever appended, so ids follow time: trim everything below the cutoff.
      return client.xtrim(keys.dead, 'MINID', String(Math.floor(cutoff)))
    },
  }
}
