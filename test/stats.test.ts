import { describe, expect, test } from 'vitest'
import { harness } from './helpers/queue.js'
import { connect } from './helpers/redis.js'

const redis = connect()

const zeroTotals = {
  sent: 0,
  failed: 0,
  suppressed: 0,
  retried: 0,
  throttled: 0,
  delivered: 0,
  bounced: 0,
  bouncedPermanent: 0,
  complained: 0,
  opened: 0,
  clicked: 0,
  rejected: 0,
  renderingFailed: 0,
  deliveryDelayed: 0,
}
const zeroRates = { deliveryRate: 0, bounceRate: 0, complaintRate: 0, openRate: 0, clickRate: 0 }
const idleStream = { length: 0, pending: 0, waiting: 0, lag: 0, oldestWaitingMs: 0, consumers: 0 }

describe('stats', () => {
  test('an empty queue: zeros everywhere, rates 0 when nothing was sent', async () => {
    const { queue } = harness(redis)
    expect(await queue.stats()).toEqual({
      streams: { high: idleStream, normal: idleStream, low: idleStream },
      delayed: 0,
      dead: 0,
      suppressed: 0,
      totals: zeroTotals,
      rates: zeroRates,
    })
    expect(await queue.batchStats('none')).toBeNull()
    await expect(queue.batchStats('bad id')).rejects.toMatchObject({ code: 'E_VALIDATION', field: 'batchId' })
  })
})
