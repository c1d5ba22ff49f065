// Strict idempotency: an idempotency key reused with another job is refused instead of answered with the first job.
import { createHash } from 'node:crypto'
import { MailstreamError } from '../errors.js'
import type { EmailJob } from '../job.js'

/** JSON with object keys sorted, so that `{ a, b }` and `{ b, a }` give the same text. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonical(item)}`).join(',')}}`
  }
  return JSON.stringify(value)
}

/**
 * A job's fingerprint: SHA-256 (base64url, 22 characters) of its content as validated, without
 * what differs between two tries of the same request: its id (made up when none is given), when
 * it was enqueued, and the idempotency key itself. When it is due (`delayMs`, `sendAt`) is left
 * out too: `delayMs` counts from each try.
 */
export function jobFingerprint(job: EmailJob): string {
  const { id: _id, createdAt: _createdAt, idempotencyKey: _key, ...content } = job
  return createHash('sha256').update(canonical(content)).digest('base64url').slice(0, 22)
}

/** The error for a job whose idempotency key names a job of other content (`index` within `enqueueMany`). */
export function conflictError(key: string, existingId: string, index?: number): MailstreamError {
  const where = index === undefined ? '' : `jobs[${index}]: `
  const others = index === undefined ? '' : ' (the other jobs of the call were written: calling again adds nothing)'
  return new MailstreamError(
    'E_IDEMPOTENCY_CONFLICT',
    `${where}idempotencyKey: '${key}' was used for job ${existingId} with other content; nothing was written for this job${others}`,
    { field: index === undefined ? 'idempotencyKey' : `${index}.idempotencyKey` },
  )
}
