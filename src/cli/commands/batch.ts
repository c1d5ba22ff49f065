import { MailstreamError } from '../../errors.js'
import { withQueue } from '../connect.js'
import { out } from '../context.js'
import { formatTime, pairs } from '../format.js'
import { UsageError } from '../usage-error.js'

/** `mailstream batch <id>`: a batch's counters and progress. */
export const batch = withQueue(async (context) => {
  const [batchId] = context.args
  if (!batchId) throw new UsageError('batch needs a batch id')
  const hash = await context.redis.hgetall(context.keys.batch(batchId))
  if (!hash.total) throw new MailstreamError('E_NOT_FOUND', `no batch ${batchId}`)
  const number = (field: string) => Number(hash[field] ?? 0)
  const completed = number('sent') + number('failed') + number('suppressed') + number('cancelled')
  const total = number('total')
  const shown = {
    batchId,
    total,
    completed,
    percentage: total ? Math.floor((completed * 10_000) / total) / 100 : 0,
    sent: number('sent'),
    failed: number('failed'),
    suppressed: number('suppressed'),
    cancelled: number('cancelled'),
    sealed: hash.sealed === '1',
    finishedAt: hash.finishedAt ? Number(hash.finishedAt) : undefined,
  }
  out(context, shown, () =>
    pairs([
      ['batch', batchId],
      ['progress', `${completed}/${total} (${shown.percentage}%)`],
      ['sent', shown.sent],
      ['failed', shown.failed],
      ['suppressed', shown.suppressed],
      ['cancelled', shown.cancelled],
      ['all enqueued', shown.sealed ? 'yes' : 'no'],
      ['finished', formatTime(shown.finishedAt)],
    ]),
  )
})
