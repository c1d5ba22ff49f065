import { MailstreamError } from '../../errors.js'
import { withQueue } from '../connect.js'
import { count, out } from '../context.js'
import { formatTime, table } from '../format.js'
import { UsageError } from '../usage-error.js'

/** `mailstream suppression list`: suppressed addresses, read in pages up to --count. */
export const list = withQueue(async (context) => {
  const limit = count(context.values.count, 100)
  const items = []
  let cursor = '0'
  do {
    const page = await context.queue.suppression.list({ cursor, count: Math.min(limit, 1000) })
    items.push(...page.items)
    cursor = page.cursor
  } while (cursor !== '0' && items.length < limit)
  const shown = items.slice(0, limit)
  out(context, shown, () =>
    shown.length === 0
      ? 'no suppressed addresses'
      : table(
          ['address', 'reason', 'since'],
          shown.map((item) => [item.address, item.reason, formatTime(item.at)]),
        ),
  )
})

/** `mailstream suppression add <address>`. */
export const add = withQueue(async (context) => {
  const [address] = context.args
  if (!address) throw new UsageError('suppression add needs an address')
  const reason = typeof context.values.reason === 'string' ? context.values.reason : 'manual'
  await context.queue.suppression.add(address, reason)
  out(context, { added: address.toLowerCase() }, () => `suppressed ${address.toLowerCase()}`)
})

/** `mailstream suppression remove <address>`. */
export const remove = withQueue(async (context) => {
  const [address] = context.args
  if (!address) throw new UsageError('suppression remove needs an address')
  const removed = await context.queue.suppression.remove(address)
  if (!removed) throw new MailstreamError('E_NOT_FOUND', `${address} is not suppressed`)
  out(context, { removed: address.toLowerCase() }, () => `removed ${address.toLowerCase()}`)
})
