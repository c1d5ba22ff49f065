import { z } from 'zod'

export type { TracingOptions } from './tracing.js'

/** The `tracing` option of a queue and a worker: `false`, or what to record. Default: on. */
export const tracingSchema = z
  .union([z.literal(false), z.strictObject({ recordSubject: z.boolean().optional() })], {
    error: 'must be false or { recordSubject?: boolean }',
  })
  .optional()
