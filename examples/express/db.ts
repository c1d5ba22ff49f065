import { readdir, readFile } from 'node:fs/promises'
import pg from 'pg'

const MIGRATIONS_DIR = new URL('./migrations/', import.meta.url)
const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/

/** A pool whose connections use `schema` (created when missing), so that tests can each have their own. */
export async function connectDatabase(databaseUrl: string, schema = 'public'): Promise<pg.Pool> {
  if (!SCHEMA_RE.test(schema)) throw new Error(`schema must match ${SCHEMA_RE}, got ${schema}`)
  const pool = new pg.Pool({ connectionString: databaseUrl, options: `-c search_path=${schema}` })
  pool.on('error', () => {
    // An idle connection dropped by the server: the pool replaces it.
  })
  await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`)
  return pool
}

/**
 * Applies the SQL files of migrations/ that have not run yet, in name order, each in a
 * transaction. An advisory lock keeps two processes starting at once from applying one twice.
 * Resolves the names applied now.
 */
export async function migrate(pool: pg.Pool): Promise<string[]> {
  const files = (await readdir(MIGRATIONS_DIR)).filter((name) => name.endsWith('.sql')).sort()
  const client = await pool.connect()
  const applied: string[] = []
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    )
    for (const name of files) {
      await client.query('BEGIN')
      try {
        await client.query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':migrations'))")
        const done = await client.query('SELECT 1 FROM schema_migrations WHERE name = $1', [name])
        if (done.rowCount === 0) {
          await client.query(await readFile(new URL(name, MIGRATIONS_DIR), 'utf8'))
          await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [name])
          applied.push(name)
        }
        await client.query('COMMIT')
      } catch (error) {
        await client.query('ROLLBACK')
        throw error
      }
    }
  } finally {
    client.release()
  }
  return applied
}
