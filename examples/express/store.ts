import type { Outbox } from 'mailstream/pg'
import type pg from 'pg'
import type { EmailFor, Issue, Subscriber, SubscriberStore } from '../shared/store.js'

interface SubscriberRow {
  email: string
  name: string | null
  locale: string | null
  status: Subscriber['status']
  created_at: Date
  confirmed_at: Date | null
  unsubscribed_at: Date | null
}

function toSubscriber(row: SubscriberRow): Subscriber {
  const subscriber: Subscriber = { email: row.email, status: row.status, createdAt: row.created_at.getTime() }
  if (row.name !== null) subscriber.name = row.name
  if (row.locale !== null) subscriber.locale = row.locale
  if (row.confirmed_at) subscriber.confirmedAt = row.confirmed_at.getTime()
  if (row.unsubscribed_at) subscriber.unsubscribedAt = row.unsubscribed_at.getTime()
  return subscriber
}

const toIssue = (row: { id: string; title: string; body: string; published_at: Date }): Issue => ({
  id: row.id,
  title: row.title,
  body: row.body,
  publishedAt: row.published_at.getTime(),
})

/** A new sign-up, or a repeated one (see SubscriberStore.requestSubscription), on `client`. */
async function upsertPending(
  client: pg.PoolClient,
  email: string,
  name: string | undefined,
  locale: string | undefined,
): Promise<Subscriber> {
  // An active subscriber is left as is: the conditional DO UPDATE returns no row for them.
  const { rows } = await client.query<SubscriberRow>(
    `INSERT INTO subscribers (email, name, locale, status) VALUES ($1, $2, $3, 'pending')
     ON CONFLICT (email) DO UPDATE
       SET name = COALESCE(EXCLUDED.name, subscribers.name),
           locale = COALESCE(EXCLUDED.locale, subscribers.locale),
           status = 'pending',
           unsubscribed_at = NULL
       WHERE subscribers.status <> 'active'
     RETURNING *`,
    [email, name ?? null, locale ?? null],
  )
  if (rows[0]) return toSubscriber(rows[0])
  const current = await client.query<SubscriberRow>('SELECT * FROM subscribers WHERE email = $1', [email])
  return toSubscriber(current.rows[0] as SubscriberRow)
}

/**
 * Subscribers and issues in PostgreSQL (tables from migrations/001_init.sql). With an outbox, a
 * change and the email it causes are written in one transaction: a rolled-back sign-up sends
 * nothing, a committed one is relayed to Redis once, even if the process dies right after COMMIT.
 */
export function createPgStore(pool: pg.Pool, outboxOf: () => Outbox | undefined = () => undefined): SubscriberStore {
  /** Runs `change` in a transaction and inserts the email it causes, if any, in the same one. */
  async function withEmail<T>(
    change: (client: pg.PoolClient) => Promise<{ result: T; subscriber?: Subscriber }>,
    email: EmailFor | undefined,
  ): Promise<T> {
    const outbox = outboxOf()
    const client = await pool.connect()
    try {
      await client.query('BEGIN')
      const { result, subscriber } = await change(client)
      const job = outbox && subscriber && email?.(subscriber)
      if (outbox && job) await outbox.enqueue(client, job)
      await client.query('COMMIT')
      return result
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    } finally {
      client.release()
    }
  }

  return {
    get outbox() {
      return outboxOf() !== undefined
    },

    async get(email) {
      const { rows } = await pool.query<SubscriberRow>('SELECT * FROM subscribers WHERE email = $1', [email])
      return rows[0] ? toSubscriber(rows[0]) : null
    },

    async requestSubscription({ email, name, locale }, confirmation) {
      return withEmail(async (client) => {
        const subscriber = await upsertPending(client, email, name, locale)
        return { result: subscriber, subscriber }
      }, confirmation)
    },

    async activate(email, welcome) {
      return withEmail(async (client) => {
        const { rows } = await client.query<SubscriberRow>(
          "UPDATE subscribers SET status = 'active', confirmed_at = now() WHERE email = $1 AND status = 'pending' RETURNING *",
          [email],
        )
        return rows[0] ? { result: true, subscriber: toSubscriber(rows[0]) } : { result: false }
      }, welcome)
    },

    async unsubscribe(email) {
      const result = await pool.query(
        "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = now() WHERE email = $1 AND status <> 'unsubscribed'",
        [email],
      )
      return result.rowCount === 1
    },

    async *activeSubscribers(pageSize = 500) {
      // Keyset paging: each page starts after the last email of the one before.
      let after = ''
      for (;;) {
        const { rows } = await pool.query<SubscriberRow>(
          "SELECT * FROM subscribers WHERE status = 'active' AND email > $1 ORDER BY email LIMIT $2",
          [after, pageSize],
        )
        for (const row of rows) yield toSubscriber(row)
        if (rows.length < pageSize) return
        after = (rows.at(-1) as SubscriberRow).email
      }
    },

    async saveIssue(issue) {
      const { rows } = await pool.query(
        `WITH inserted AS (
           INSERT INTO issues (id, title, body, published_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO NOTHING RETURNING *
         )
         SELECT * FROM inserted UNION ALL SELECT * FROM issues WHERE id = $1 LIMIT 1`,
        [issue.id, issue.title, issue.body, new Date(issue.publishedAt)],
      )
      return toIssue(rows[0])
    },

    async getIssue(id) {
      const { rows } = await pool.query('SELECT * FROM issues WHERE id = $1', [id])
      return rows[0] ? toIssue(rows[0]) : null
    },

    async recentIssues(limit) {
      const { rows } = await pool.query('SELECT * FROM issues ORDER BY published_at DESC LIMIT $1', [limit])
      return rows.map(toIssue)
    },

    async ping() {
      await pool.query('SELECT 1')
    },
  }
}
