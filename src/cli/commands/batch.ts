import { AB_STATE_FIELDS, type AbTestState, abTestState } from '../../ab-test/state.js'
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
  if (!hash.total && !hash.ab) throw new MailstreamError('E_NOT_FOUND', `no batch ${batchId}`)
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
    abTest: abTestState(AB_STATE_FIELDS.map((field) => hash[field] ?? null)),
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
      ...abLines(shown.abTest),
    ]),
  )
})

const percent = (rate: number) => `${Math.round(rate * 10_000) / 100}%`

/** An A/B test's lines: where it stands, each variant's numbers, the decision. */
function abLines(test: AbTestState | undefined): [string, string | number][] {
  if (!test) return []
  const lines: [string, string | number][] = [
    ['A/B test', `${test.state}, by ${test.metric}, ${test.released}/${test.held} held sent the winner`],
    ['decide at', formatTime(test.decideAt)],
  ]
  for (const variant of test.variants) {
    lines.push([
      `variant ${variant.index}`,
      `${variant.subject ?? variant.template ?? ''}: sent ${variant.sent}, opened ${percent(variant.openRate)}, clicked ${percent(variant.clickRate)}`,
    ])
  }
  if (test.decision) lines.push(['winner', `variant ${test.decision.winner} (${test.decision.reason})`])
  return lines
}
