/**
 * Advertising email under Korean law (정보통신망법 제50조): the records the rules speak of.
 * Where consents live is the app's; mailstream only reads them through the functions it is given.
 */

/** Who sends the advertising (제50조 제4항): shown in every advertising email's footer. */
export interface AdvertisingSender {
  /** The sender's name (a person's or a company's). */
  name: string
  /** An email address that reaches the sender. */
  email: string
  /** A telephone number that reaches the sender. */
  phone: string
  /** The sender's postal address. */
  address: string
}

/** One recipient's advertising consent, as the app keeps it. */
export interface AdvertisingConsent {
  address: string
  /** When the recipient consented (epoch ms, a Date or an ISO string). */
  consentedAt: Date | number | string
  /** When the last two-yearly reminder (제50조 제8항) was sent, if one was. */
  lastReminderAt?: Date | number | string
  /** The recipient's name, for the reminder's greeting. Default: none. */
  name?: string
  /** The language of the recipient's notices (`ko`, `en`). Default: the reminder run's `locale`. */
  locale?: string
}

/** The result a processing notice (제50조 제7항) reports. */
export type ConsentChange = 'consented' | 'refused' | 'withdrawn'
