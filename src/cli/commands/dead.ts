import { MailstreamError } from '../../errors.js'
import type { DeadLetter } from '../../queue/types.js'
import { withQueue } from '../connect.js'
import { count, out } from '../context.js'
import { formatTime, table, truncate } from '../format.js'
import { UsageError } from '../usage-error.js'

/** A templated job's subject is made at send time: say which template instead. */
function subjectOf(letter: DeadLetter): string | undefined {
  if (!letter.job) return undefined
  if (letter.job.subject !== undefined) return letter.job.subject
  return letter.job.template === undefined ? undefined : `(template ${letter.job.template})`
}

/** `mailstream dead list`: dead letters, newest first; long cells cut to keep one line each. */
export const list = withQueue(async (context) => {
  const letters = await context.queue.deadLetters.list({ count: count(context.values.count, 50) })
  out(context, letters, () =>
    letters.length === 0
      ? 'no dead letters'
      : table(
          ['id', 'failed', 'type', 'to', 'subject', 'attempts', 'error'],
          letters.map((letter) => [
            letter.id,
            formatTime(letter.failedAt),
            letter.job?.type,
            letter.job && truncate(letter.job.to.map((address) => address.address).join(', '), 40),
            truncate(subjectOf(letter) ?? '', 40),
            letter.attempts,
            truncate(letter.error, 80),
          ]),
        ),
  )
})

/** `mailstream dead retry <id> | --all`: sends dead letters again with fresh attempts. */
export const retry = withQueue(async (context) => {
  const [target] = context.args
  const all = context.values.all === true
  if (!target && !all) throw new UsageError('dead retry needs a job id or --all')
  const moved = await context.queue.deadLetters.retry(all ? { all: true } : (target as string))
  if (moved === 0 && !all) throw new MailstreamError('E_NOT_FOUND', `no dead letter for ${target}`)
  out(context, { retried: moved }, () => `retried ${moved}`)
})

/** `mailstream dead purge [--before DATE]`: deletes dead letters, all or those older than DATE. */
export const purge = withQueue(async (context) => {
  const before = context.values.before
  let cutoff: number | undefined
  if (typeof before === 'string') {
    cutoff = /^\d+$/.test(before) ? Number(before) : Date.parse(before)
    if (Number.isNaN(cutoff)) throw new UsageError('--before must be a date (2026-11-01T00:00:00Z) or epoch ms')
  }
  const purged = await context.queue.deadLetters.purge(cutoff === undefined ? {} : { before: cutoff })
  out(context, { purged }, () => `purged ${purged}`)
})
