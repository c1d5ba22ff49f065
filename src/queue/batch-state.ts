// Where a batch stands when an `enqueueBatch` call begins, and its shared data written once.
import { BATCH_DATA_FIELD } from '../batch-data.js'
import { MailstreamError } from '../errors.js'
import type { QueueKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import type { BatchTemplate } from './batch-input.js'

/**
 * `open`: jobs may be added. `cancelled`: the batch was cancelled, nothing is added. `finished`:
 * every job of a sealed batch is final, so the batch is closed and nothing is added either.
 */
export type BatchOpening = 'open' | 'cancelled' | 'finished'

/**
 * Opens a batch for enqueueing. Shared data is written once, before any job can be sent; a batch
 * keeps the data it began with, and a call with other shared data is refused (`E_VALIDATION`).
 */
export async function openBatch(client: RedisClient, keys: QueueKeys, template: BatchTemplate): Promise<BatchOpening> {
  const { batchId, sharedJson } = template
  const batchKey = keys.batch(batchId)
  const [finishedAt, cancelledAt, createdAt, total] = await client.hmget(
    batchKey,
    'finishedAt',
    'cancelledAt',
    'createdAt',
    'total',
  )
  if (cancelledAt) return 'cancelled'
  if (finishedAt) return 'finished'
  let storedData: string | null
  if (createdAt === null && total === null) {
    // A new batch; of two calls starting it at once, the first HSETNX wins and the other compares.
    const setup = client.pipeline()
    if (sharedJson !== undefined) setup.hsetnx(batchKey, BATCH_DATA_FIELD, sharedJson)
    setup.hsetnx(batchKey, 'createdAt', template.startedAt)
    if (template.advertising) setup.hsetnx(batchKey, 'advertising', '1')
    setup.hget(batchKey, BATCH_DATA_FIELD)
    const replies = (await setup.exec()) ?? []
    for (const [error] of replies) {
      if (error) throw new MailstreamError('E_REDIS', `enqueueBatch failed: ${error.message}`, { cause: error })
    }
    storedData = (replies.at(-1)?.[1] ?? null) as string | null
  } else {
    storedData = await client.hget(batchKey, BATCH_DATA_FIELD)
  }
  if ((storedData ?? undefined) !== sharedJson) {
    throw new MailstreamError(
      'E_VALIDATION',
      `data: batch ${batchId} was enqueued with other shared data; cancel it and use a new batchId`,
      { field: 'data' },
    )
  }
  return 'open'
}
