import { GROUP } from '../../keys.js'
import { withQueue } from '../connect.js'
import { count, out } from '../context.js'
import { formatDuration, table } from '../format.js'

interface PendingRow {
  priority: string
  entryId: string
  consumer: string
  idleMs: number
  deliveries: number
}

/** `mailstream pending`: entries delivered to workers and not yet acknowledged, per stream. */
export const pending = withQueue(async (context) => {
  const limit = count(context.values.count, 50)
  const rows: PendingRow[] = []
  for (const [index, stream] of context.keys.streams.entries()) {
    const entries = (await context.redis.xpending(stream, GROUP, '-', '+', limit).catch(() => [])) as [
      string,
      string,
      number,
      number,
    ][]
    for (const [entryId, consumer, idleMs, deliveries] of entries) {
      rows.push({ priority: ['high', 'normal', 'low'][index] as string, entryId, consumer, idleMs, deliveries })
    }
  }
  out(context, rows, () =>
    rows.length === 0
      ? 'nothing pending'
      : table(
          ['priority', 'entry', 'consumer', 'idle', 'deliveries'],
          rows.map((row) => [row.priority, row.entryId, row.consumer, formatDuration(row.idleMs), row.deliveries]),
        ),
  )
})
