// `deliverAt`: a job due at a wall-clock time in the reader's zone (`{ local: '09:00', timeZone: 'Asia/Seoul' }`).
import { z } from 'zod'
import { nextLocalTime, parseClock } from './calendar.js'
import { isTimeZone } from './zoned-time.js'

/** When the reader's clock shows `local` (`HH:MM`) in `timeZone` (IANA, `Asia/Seoul`): the next such instant. */
export interface DeliverAt {
  local: string
  timeZone: string
}

/** True for `HH:MM`, 00:00 to 23:59. */
export function isClock(value: unknown): value is string {
  try {
    parseClock(value, 'local')
    return true
  } catch {
    return false
  }
}

/** True for a time zone the platform knows; long strings are refused before Intl sees them. */
export const isZone = (value: unknown): value is string =>
  typeof value === 'string' && value.length <= 64 && isTimeZone(value)

export const CLOCK_MESSAGE = 'must be a time of day as HH:MM (00:00-23:59)'
export const ZONE_MESSAGE = 'must be an IANA time zone such as Asia/Seoul or America/New_York'

export const deliverAtSchema = z.strictObject(
  {
    local: z.string().refine(isClock, CLOCK_MESSAGE),
    timeZone: z.string().refine(isZone, ZONE_MESSAGE),
  },
  { message: "must be { local: 'HH:MM', timeZone }" },
)

/** Epoch ms when a job given `deliverAt` at `now` is due; 0 when that is now. */
export function deliverAtDue(deliverAt: DeliverAt, now: number): number {
  const at = nextLocalTime(deliverAt.local, deliverAt.timeZone, now)
  return at > now ? at : 0
}
