/**
 * Advertising consents in PostgreSQL (migrations/002_consents.sql): the queue's consent lookup,
 * the consent and withdrawal of the routes, and the ConsentStore of the 제8항 reminder run.
 */
import type { AdvertisingConsent } from 'mailstream'
import type pg from 'pg'
import type { AdvertisingConsents, StoredChange } from '../shared/consents.js'

interface ConsentRow {
  address: string
  consented_at: Date
  last_reminder_at: Date | null
  locale: string | null
}

const toConsent = (row: ConsentRow): AdvertisingConsent => ({
  address: row.address,
  consentedAt: row.consented_at,
  ...(row.last_reminder_at && { lastReminderAt: row.last_reminder_at }),
  ...(row.locale && { locale: row.locale }),
})

/** Longest wait for one statement: the queue bounds its lookup too, this frees the connection. */
const STATEMENT_TIMEOUT_MS = 5000

export function createPgConsents(pool: pg.Pool): AdvertisingConsents {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) =>
    pool.query<R>({ text, values, query_timeout: STATEMENT_TIMEOUT_MS } as pg.QueryConfig)

  return {
    async lookup(addresses) {
      if (addresses.length === 0) return []
      const { rows } = await query<ConsentRow>(
        `SELECT address, consented_at, last_reminder_at, locale FROM ad_consents
          WHERE address = ANY($1::text[]) AND withdrawn_at IS NULL`,
        [addresses],
      )
      return rows.map(toConsent)
    },

    async give(address, { method, source, textVersion, locale }): Promise<StoredChange> {
      // A new consent, or one after a withdrawal (a new period: the reminder counts from it). A
      // current consent is kept with its date: the conditional DO UPDATE returns no row.
      const { rows } = await query<{ consented_at: Date }>(
        `INSERT INTO ad_consents (address, consented_at, method, source, consent_text_version, locale)
         VALUES ($1, now(), $2, $3, $4, $5)
         ON CONFLICT (address) DO UPDATE
           SET consented_at = now(), withdrawn_at = NULL, method = EXCLUDED.method, source = EXCLUDED.source,
               consent_text_version = EXCLUDED.consent_text_version, last_reminder_at = NULL,
               locale = COALESCE(EXCLUDED.locale, ad_consents.locale)
           WHERE ad_consents.withdrawn_at IS NOT NULL
         RETURNING consented_at`,
        [address, method, source, textVersion, locale ?? null],
      )
      if (rows[0]) return { changed: true, at: rows[0].consented_at }
      const current = await query<{ consented_at: Date }>('SELECT consented_at FROM ad_consents WHERE address = $1', [
        address,
      ])
      return { changed: false, at: (current.rows[0] as { consented_at: Date }).consented_at }
    },

    async withdraw(address) {
      const { rows } = await query<{ withdrawn_at: Date }>(
        `WITH changed AS (
           UPDATE ad_consents SET withdrawn_at = now() WHERE address = $1 AND withdrawn_at IS NULL
           RETURNING withdrawn_at, true AS changed
         )
         SELECT withdrawn_at, changed FROM changed
         UNION ALL SELECT withdrawn_at, false FROM ad_consents WHERE address = $1 AND withdrawn_at IS NOT NULL
         LIMIT 1`,
        [address],
      )
      const row = rows[0] as { withdrawn_at: Date; changed: boolean } | undefined
      return row ? { changed: row.changed, at: row.withdrawn_at } : null
    },

    async listConsents({ consentedOrRemindedBefore, limit, cursor }) {
      const { rows } = await query<ConsentRow>(
        `SELECT address, consented_at, last_reminder_at, locale FROM ad_consents
          WHERE withdrawn_at IS NULL
            AND greatest(consented_at, coalesce(last_reminder_at, consented_at)) < $1
            AND address > $2
          ORDER BY address LIMIT $3`,
        [consentedOrRemindedBefore, cursor ?? '', limit],
      )
      const consents = rows.map(toConsent)
      return rows.length === limit ? { consents, cursor: (rows.at(-1) as ConsentRow).address } : { consents }
    },

    async markReminded(address, at) {
      await query('UPDATE ad_consents SET last_reminder_at = $2 WHERE address = $1', [address, at])
    },
  }
}
