import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll } from 'vitest'
import { createExpressApp, type ExpressApp } from '../../examples/express/app.js'
import { type EmailLogRow, exampleSuite } from './contract.js'

// Real PostgreSQL: DATABASE_URL, or the local server. Each run of this file has its own schema.
const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
const schema = `example_${randomBytes(4).toString('hex')}`

afterAll(async () => {
  const client = new pg.Client({ connectionString: databaseUrl })
  await client.connect()
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await client.end()
})

exampleSuite<ExpressApp>({
  name: 'Express',
  createApp: (config, overrides) => createExpressApp({ ...config, databaseUrl }, { ...overrides, schema }),
  async emailLog(app) {
    const { rows } = await app.pool.query<EmailLogRow>(
      'SELECT source, event, job_id, batch_id, recipients, message_id FROM email_log ORDER BY id',
    )
    return rows
  },
})
