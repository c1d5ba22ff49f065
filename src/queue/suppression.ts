// The suppression list `P:suppressed` (address -> JSON { reason, at }): the fetch script checks it.
import { MailstreamError } from '../errors.js'
import { addressKey } from '../job.js'
import type { QueueContext, SuppressionEntry, SuppressionList } from './types.js'

const normalise = (address: unknown): string => addressKey(address, 'address')

function parseEntry(address: string, value: string): SuppressionEntry {
  let detail: { reason?: string; at?: number } = {}
  try {
    detail = JSON.parse(value)
  } catch {
    detail = { reason: value }
  }
  return { address, reason: detail.reason ?? '', at: Number(detail.at ?? 0) }
}

/** A suppression reason: one line of at most 500 characters (`E_VALIDATION` otherwise). */
export function checkReason(reason: unknown): asserts reason is string {
  if (typeof reason !== 'string' || /[\r\n]/.test(reason) || reason.length > 500) {
    throw new MailstreamError('E_VALIDATION', 'reason: must be a single line of at most 500 characters', {
      field: 'reason',
    })
  }
}

export function createSuppressionList({ client, keys, assertOpen }: QueueContext): SuppressionList {
  return {
    async add(address, reason = 'manual') {
      assertOpen()
      const normalised = normalise(address)
      checkReason(reason)
      await client.hset(keys.suppressed, normalised, JSON.stringify({ reason, at: Date.now() }))
    },
    async remove(address) {
      assertOpen()
      return (await client.hdel(keys.suppressed, normalise(address))) === 1
    },
    async has(address) {
      assertOpen()
      return (await client.hexists(keys.suppressed, normalise(address))) === 1
    },
    async list({ cursor = '0', count = 100 } = {}) {
      assertOpen()
      const [next, flat] = await client.hscan(keys.suppressed, cursor, 'COUNT', count)
      const items: SuppressionEntry[] = []
      for (let i = 0; i + 1 < flat.length; i += 2) items.push(parseEntry(flat[i] as string, flat[i + 1] as string))
      return { items, cursor: next }
    },
  }
}
