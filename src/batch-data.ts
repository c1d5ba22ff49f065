/** Where `enqueueBatch` keeps the data every job of a batch shares, in the batch hash. */
export const BATCH_DATA_FIELD = 'data'

/**
 * The shared data of batches, read once per batch and kept in memory (the worker merges it into
 * each job's data before rendering). A batch's data never changes once written, so an entry stays
 * until newer batches push it out; a batch without data is asked again after `missingTtlMs`.
 */
export function createBatchDataCache(
  load: (batchId: string) => Promise<string | null>,
  { limit = 32, missingTtlMs = 5000 } = {},
) {
  const entries = new Map<string, { data: Promise<Record<string, unknown> | undefined>; expiresAt: number }>()
  return {
    get(batchId: string): Promise<Record<string, unknown> | undefined> {
      const cached = entries.get(batchId)
      if (cached && cached.expiresAt > Date.now()) return cached.data
      const entry = {
        data: load(batchId).then((json) => (json ? (JSON.parse(json) as Record<string, unknown>) : undefined)),
        expiresAt: Number.POSITIVE_INFINITY,
      }
      entries.delete(batchId)
      entries.set(batchId, entry)
      if (entries.size > limit) entries.delete(entries.keys().next().value as string)
      entry.data.then(
        (data) => {
          if (data === undefined) entry.expiresAt = Date.now() + missingTtlMs
        },
        // A failed read is not kept: the job is retried and reads again.
        () => {
          if (entries.get(batchId) === entry) entries.delete(batchId)
        },
      )
      return entry.data
    },
  }
}
