import { withQueue } from '../connect.js'
import { out } from '../context.js'
import { formatDuration, pairs, table } from '../format.js'

const percent = (rate: number) => `${(rate * 100).toFixed(2)}%`

/** `mailstream stats`: depths per stream, then the counters. */
export const stats = withQueue(async (context) => {
  const stats = await context.queue.stats()
  out(context, stats, () => {
    const rows = Object.entries(stats.streams).map(([priority, stream]) => [
      priority,
      stream.waiting,
      stream.pending,
      stream.consumers,
      stream.oldestWaitingMs ? formatDuration(stream.oldestWaitingMs) : '-',
    ])
    return [
      table(['stream', 'waiting', 'pending', 'consumers', 'oldest'], rows),
      '',
      pairs([
        ['delayed', stats.delayed],
        ['dead', stats.dead],
        ['suppressed', stats.suppressed],
        ['sent', stats.totals.sent],
        ['failed', stats.totals.failed],
        ['retried', stats.totals.retried],
        ['delivered', `${stats.totals.delivered} (${percent(stats.rates.deliveryRate)})`],
        ['bounced', `${stats.totals.bounced} (${percent(stats.rates.bounceRate)})`],
        ['complained', `${stats.totals.complained} (${percent(stats.rates.complaintRate)})`],
        ['opened', `${stats.totals.opened} (${percent(stats.rates.openRate)})`],
        ['clicked', `${stats.totals.clicked} (${percent(stats.rates.clickRate)})`],
      ]),
    ].join('\n')
  })
})
