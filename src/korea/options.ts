// The options of the Korean advertising profile, checked once at the boundary (`E_CONFIG` naming the field).
import { z } from 'zod'
import type { WeeklyHours } from '../calendar.js'
import { isValidEmail } from '../job.js'
import type { AdvertisingConsent, AdvertisingSender } from './types.js'

const CONTROL_RE = /[\u0000-\u001f\u007f]/

const line = (max: number) =>
  z
    .string()
    .trim()
    .min(1, 'is required')
    .max(max)
    .refine((value) => !CONTROL_RE.test(value), { message: 'may not contain control characters' })

/** Who sends the advertising: every item is shown in the footer, so each must be there. */
export const senderSchema = z.strictObject({
  name: line(200),
  email: line(254).refine((value) => isValidEmail(value), { message: 'must be an email address like ad@example.com' }),
  phone: line(40).refine((value) => /^\+?[0-9][0-9 ().-]*[0-9]$/.test(value) && /(?:\d\D*){7}/.test(value), {
    message: 'must be a telephone number like 02-1234-5678',
  }),
  address: line(500),
})

/** Default quiet hours: 21:00-08:00 in Seoul, the hours 제50조 제3항 names for other media. */
export const DEFAULT_QUIET_HOURS: WeeklyHours = { timeZone: 'Asia/Seoul', from: '21:00', to: '08:00' }

/**
 * Looks up the advertising consents of addresses (lower case, an internationalised domain in
 * punycode); an address it has none for is left out. A consent dated in the future (more than five
 * minutes ahead) does not count yet.
 */
export type ConsentLookup = (
  addresses: string[],
) => Promise<Iterable<AdvertisingConsent | null | undefined>> | Iterable<AdvertisingConsent | null | undefined>

/** The `advertising` option of `createEmailQueue`. */
export interface AdvertisingQueueOptions {
  /** Who sends the advertising (제50조 제4항): raw html/text advertising jobs are checked to show it. */
  sender: AdvertisingSender
  /**
   * The app's consent records (제50조 제1항): called with the lower-case addresses of an
   * advertising job (or of a chunk of a batch) and resolving the consents it holds for them. A
   * recipient without one is refused (`enqueue`) or left out and counted (`enqueueBatch`).
   */
  consent: ConsentLookup
  /**
   * Longest wait for `consent`, in ms (10 to 60 000): `E_TIMEOUT` after it, nothing written. Below
   * the queue's `commandTimeoutMs`, which bounds a whole `enqueue`. Default 2000, or half of
   * `commandTimeoutMs` when that is lower.
   */
  consentTimeoutMs?: number
  /**
   * Advertising due inside these weekly hours is held to their end, as a courtesy (email is exempt
   * from the 21:00-08:00 rule, 시행령 제61조 제2항); `false` sends at any hour.
   * Default `{ timeZone: 'Asia/Seoul', from: '21:00', to: '08:00' }`.
   */
  quietHours?: false | WeeklyHours
}

export const advertisingQueueSchema = z.strictObject({
  sender: senderSchema,
  consent: z.custom<ConsentLookup>((value) => typeof value === 'function', {
    message: 'must be a function (addresses) => Promise<consents>',
  }),
  consentTimeoutMs: z.number().int().min(10).max(60_000).optional(),
  quietHours: z
    .union([
      z.literal(false),
      z.custom<WeeklyHours>((value) => typeof value === 'object' && value !== null && !Array.isArray(value), {
        message: "must be false or weekly hours like { timeZone: 'Asia/Seoul', from: '21:00', to: '08:00' }",
      }),
    ])
    .default(DEFAULT_QUIET_HOURS),
})

export type AdvertisingQueueConfig = z.output<typeof advertisingQueueSchema>

/** The `advertising` option of `createEmailWorker`. */
export interface AdvertisingWorkerOptions {
  /** Shown in the footer of every advertising email the worker renders, and checked to be there. */
  sender: AdvertisingSender
}

export const advertisingWorkerSchema = z.strictObject({ sender: senderSchema })
