// The relay's connections: every statement and every connect() bounded, a failed connection destroyed.
import { MailstreamError } from '../errors.js'
import { withTimeout } from '../timeout.js'
import type { QueryResultLike } from './outbox.js'

/** A connection taken from a pool (`pg.PoolClient`): released, or destroyed with an error. */
export interface PoolClientLike {
  query(text: string, values?: unknown[]): Promise<QueryResultLike>
  release(error?: Error | boolean): void
  on?(event: 'notification' | 'error', listener: (...args: unknown[]) => void): unknown
  removeListener?(event: 'notification' | 'error', listener: (...args: unknown[]) => void): unknown
}

/** Where the relay takes its connections: a `pg.Pool`. */
export interface PoolLike {
  connect(): Promise<PoolClientLike>
}

/** A PostgreSQL failure as the relay reports it: `E_DATABASE` (its own errors pass as they are). */
export function pgError(error: unknown, what: string): MailstreamError {
  if (error instanceof MailstreamError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new MailstreamError('E_DATABASE', `outbox relay: ${what}: ${message}`, { cause: error })
}

export function createConnections(pool: PoolLike, timeoutMs: number) {
  /** Within `timeoutMs`, or rejects; the caller then destroys the connection, which ends its transaction. */
  function bound<T>(promise: Promise<T>, what: string): Promise<T> {
    return withTimeout(
      promise,
      timeoutMs,
      () => new MailstreamError('E_TIMEOUT', `outbox relay: ${what}: no answer within ${timeoutMs} ms`),
    )
  }

  /** A connection; a late one (after its bound) is released, not leaked. */
  async function connect(): Promise<PoolClientLike> {
    const pending = pool.connect()
    try {
      return await bound(pending, 'connect')
    } catch (error) {
      pending.then(
        (late) => late.release(),
        () => {},
      )
      throw error
    }
  }

  /**
   * Runs `use` on a connection of its own. A failure destroys the connection instead of rolling
   * back: that ends its transaction (and its row locks) even when the server stopped answering.
   */
  async function withClient<T>(use: (client: PoolClientLike) => Promise<T>, what: string): Promise<T> {
    const client = await connect()
    let broken: Error | undefined
    try {
      return await use(client)
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error))
      throw pgError(error, what)
    } finally {
      client.release(broken)
    }
  }

  return { bound, connect, withClient }
}

export type Connections = ReturnType<typeof createConnections>
