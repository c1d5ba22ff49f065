// The batch methods of a queue: enqueue, cancel, read and decide a batch's A/B test.
import { runAbTest } from '../ab-test/state.js'
import { MailstreamError } from '../errors.js'
import { cancelBatch, getBatch } from './batches.js'
import { enqueueBatch } from './enqueue-batch.js'
import { batchStats } from './stats.js'
import type { EmailQueue, QueueContext } from './types.js'

type BatchMethods = Pick<EmailQueue, 'enqueueBatch' | 'cancelBatch' | 'getBatch' | 'decideAbTest' | 'batchStats'>

export function createBatchMethods(
  context: QueueContext,
  checkId: (id: unknown, field?: string) => string,
): BatchMethods {
  const { assertOpen, client, steps, keys } = context
  return {
    async enqueueBatch(batchId, recipients, build, batchOptions) {
      assertOpen()
      return enqueueBatch(context, batchId, recipients, build, batchOptions)
    },

    async cancelBatch(batchId) {
      assertOpen()
      return cancelBatch(steps, keys, checkId(batchId, 'batchId'), context.statusTtlSeconds)
    },

    async getBatch(batchId) {
      assertOpen()
      return getBatch(client, keys, checkId(batchId, 'batchId'))
    },

    async decideAbTest(batchId, decideOptions = {}) {
      assertOpen()
      checkId(batchId, 'batchId')
      const { now = Date.now() } = decideOptions
      if (typeof now !== 'number' || !Number.isFinite(now)) {
        throw new MailstreamError('E_VALIDATION', 'options.now: must be epoch ms', { field: 'options.now' })
      }
      const result = await runAbTest(steps, keys, batchId, { now })
      if (!result) throw new MailstreamError('E_NOT_FOUND', `batch ${batchId} has no A/B test`, { field: 'batchId' })
      return result
    },

    async batchStats(batchId) {
      assertOpen()
      return batchStats(client, keys, checkId(batchId, 'batchId'))
    },
  }
}
