import { runAbTest } from '../ab-test/state.js'
import type { QueueKeys } from '../keys.js'
import { abClaim } from '../lua/ab-test.js'
import type { Connections } from './connections.js'
import { runLoop, wakeable } from './wake.js'

/** How long a claimed test is this worker's alone; a worker that dies frees it after this. */
const LEASE_MS = 60_000
/** Tests claimed per look, and holdout chunks (1000 recipients each) enqueued per call. */
const CLAIM = 10
const CHUNKS_PER_CALL = 20

/**
 * Decides A/B tests when they are due (`P:abtests`) and enqueues their held recipients with the
 * winner. A test is claimed with a lease, so that one worker at a time works on it; every Redis
 * call is bounded, and the loop yields between calls. A worker stopped or killed mid-drain leaves
 * the rest to the next claim, which sends nobody twice (see ab-test/state.ts).
 */
export function createAbTests(options: {
  connections: Connections
  keys: QueueKeys
  intervalMs: number
  running(): boolean
  onError(error: unknown, what: string, failures: number): void
}) {
  const { connections, keys } = options
  const wake = wakeable()

  /** Decides and drains one claimed test, renewing its lease between calls. */
  async function finish(batchId: string): Promise<void> {
    const client = connections.bounded()
    while (options.running()) {
      const result = await runAbTest(client, keys, batchId, { maxChunks: CHUNKS_PER_CALL })
      if (!result || result.done) {
        if (!result) await client.zrem(keys.abTests, batchId) // not a test (any more): nothing to decide
        return
      }
      await client.zadd(keys.abTests, 'XX', Date.now() + LEASE_MS, batchId)
    }
  }

  /** Claims the tests due now and finishes each; one that fails is tried again when its lease ends. */
  async function decideDue(): Promise<void> {
    const due = await abClaim(connections.bounded(), keys, { now: Date.now(), leaseMs: LEASE_MS, count: CLAIM })
    for (const batchId of due) {
      try {
        await finish(batchId)
      } catch (error) {
        if (!options.running()) break
        options.onError(error, `A/B test of batch ${batchId} failed, retrying when its lease ends`, 1)
      }
    }
  }

  return {
    run(): Promise<void> {
      return runLoop(options, wake, 'deciding A/B tests failed, retrying', async () => {
        await decideDue()
        return options.intervalMs
      })
    },
    wake: wake.wake,
  }
}
