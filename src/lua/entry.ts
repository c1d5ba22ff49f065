/**
 * A send-stream entry (`P:send:<priority>`), as `enqueue`, `promote` and `retry-dead` add it:
 * `id` the job id, `job` the job as JSON, `a` attempts used so far and `t` throttles in a row so
 * far (both only on entries that `promote` re-adds), `r` the recipients, lower-case and
 * ','-joined, for the suppression check.
 */
export const ENTRY_FIELDS = { jobId: 'id', payload: 'job', attempts: 'a', throttles: 't', rcpt: 'r' } as const

/** Where an entry is: 1, 2, 3 for the send streams high, normal, low (the scripts' KEYS[1..3]). */
export type StreamIndex = 1 | 2 | 3

/** The `id`, `job` and `r` fields of a send-stream entry ('' for a missing one). */
export function parseEntryFields(fields: readonly string[] | null | undefined): {
  jobId: string
  payload: string
  rcpt: string
} {
  let jobId = ''
  let payload = ''
  let rcpt = ''
  for (let i = 0; fields && i + 1 < fields.length; i += 2) {
    const name = fields[i]
    if (name === ENTRY_FIELDS.jobId) jobId = fields[i + 1] as string
    else if (name === ENTRY_FIELDS.payload) payload = fields[i + 1] as string
    else if (name === ENTRY_FIELDS.rcpt) rcpt = fields[i + 1] as string
  }
  return { jobId, payload, rcpt }
}

/** The `t` field of a send-stream entry: throttles in a row so far (0 when it has none). */
export function entryThrottles(fields: readonly string[] | null | undefined): number {
  for (let i = 0; fields && i + 1 < fields.length; i += 2) {
    if (fields[i] === ENTRY_FIELDS.throttles) return Number(fields[i + 1]) || 0
  }
  return 0
}

/** A ','-joined list as the scripts reply it ('' for none). */
export const splitList = (list: unknown): string[] => (typeof list === 'string' && list !== '' ? list.split(',') : [])
