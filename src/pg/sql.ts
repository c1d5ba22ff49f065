// The outbox table's SQL: the one place that knows its columns.
import { MailstreamError } from '../errors.js'

/** `mailstream_outbox`, or `schema.table`: lower-case identifiers, never quoted, never user text in SQL. */
const TABLE_RE = /^(?:[a-z_][a-z0-9_]{0,62}\.)?[a-z_][a-z0-9_]{0,62}$/

export const DEFAULT_TABLE = 'mailstream_outbox'

/** The table name, checked: it is written into SQL text, so only plain identifiers pass. */
export function checkTable(table: unknown, field = 'table'): string {
  if (typeof table !== 'string' || !TABLE_RE.test(table)) {
    throw new MailstreamError(
      'E_CONFIG',
      `${field}: must be a lower-case SQL identifier (a-z 0-9 _), optionally schema-qualified, got ${JSON.stringify(table)}`,
      { field },
    )
  }
  return table
}

/** The NOTIFY channel of a table: relays LISTEN on it to wake at each commit. */
export function channelOf(table: string): string {
  return `${table.replace('.', '_')}_ready`.slice(0, 63)
}

/** The last part of a possibly schema-qualified name, for index names. */
function bare(table: string): string {
  return table.slice(table.indexOf('.') + 1)
}

/**
 * The migration: one table, one partial index on the rows still to relay. Idempotent (`IF NOT
 * EXISTS`), so applying it at every start is safe.
 */
export function migrationSql(table: string = DEFAULT_TABLE): string {
  checkTable(table)
  return `CREATE TABLE IF NOT EXISTS ${table} (
  id bigserial PRIMARY KEY,
  job_id text NOT NULL,
  payload text NOT NULL,
  due_at bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  relayed_at timestamptz,
  failed_at timestamptz,
  error text
);
CREATE INDEX IF NOT EXISTS ${bare(table)}_waiting ON ${table} (id) WHERE relayed_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS ${bare(table)}_relayed ON ${table} (relayed_at) WHERE relayed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS ${bare(table)}_failed ON ${table} (id) WHERE failed_at IS NOT NULL;
`
}

/** The statements the outbox and its relay run, for one table. */
export function statements(table: string) {
  const channel = channelOf(table)
  return {
    /** One round trip: the rows, and one notification (sent at commit; Postgres folds repeats). */
    insert: (count: number) => {
      const rows = Array.from({ length: count }, (_, i) => `($${3 * i + 1}, $${3 * i + 2}, $${3 * i + 3})`)
      return `WITH added AS (INSERT INTO ${table} (job_id, payload, due_at) VALUES ${rows.join(', ')} RETURNING id, job_id)
SELECT id::text AS id, job_id, pg_notify('${channel}', '') AS notified FROM added`
    },
    claim: `SELECT id::text AS id, job_id, payload, due_at::text AS due_at FROM ${table}
WHERE relayed_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
    relayed: `UPDATE ${table} SET relayed_at = now() WHERE id = ANY($1::bigint[])`,
    failed: `UPDATE ${table} SET failed_at = now(), error = $2 WHERE id = $1::bigint`,
    prune: `DELETE FROM ${table} WHERE id IN (SELECT id FROM ${table}
WHERE relayed_at < now() - make_interval(secs => $1) ORDER BY relayed_at LIMIT $2)`,
    backlog: `SELECT count(*)::text AS waiting,
  COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_seconds,
  (SELECT count(*) FROM ${table} WHERE failed_at IS NOT NULL)::text AS failed
FROM ${table} WHERE relayed_at IS NULL AND failed_at IS NULL`,
    listen: `LISTEN ${channel}`,
    channel,
  }
}
