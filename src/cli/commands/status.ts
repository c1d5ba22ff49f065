import { MailstreamError } from '../../errors.js'
import { withQueue } from '../connect.js'
import { out } from '../context.js'
import { formatTime, pairs } from '../format.js'
import { UsageError } from '../usage-error.js'

/** `mailstream status <id>`: one job's status hash. */
export const status = withQueue(async (context) => {
  const [id] = context.args
  if (!id) throw new UsageError('status needs a job id')
  const state = await context.queue.getStatus(id)
  if (!state) throw new MailstreamError('E_NOT_FOUND', `no job ${id} (unknown, or finished more than a day ago)`)
  out(context, state, () =>
    pairs([
      ['id', state.id],
      ['status', state.status],
      ['type', state.type],
      ['priority', state.priority],
      ['attempts', `${state.attempts} of ${state.maxAttempts}`],
      ['batch', state.batchId],
      ['messageId', state.messageId],
      ['error', state.error],
      ['created', formatTime(state.createdAt)],
      ['updated', formatTime(state.updatedAt)],
      ['sent', formatTime(state.sentAt)],
      ['due', formatTime(state.dueAt)],
    ]),
  )
})
