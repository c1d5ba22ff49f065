// mailstream/pg: the transactional outbox. Loads no PostgreSQL driver: it uses the client it is given.

export type { PoolClientLike, PoolLike } from './connections.js'
export type { Outbox, OutboxEntry, OutboxOptions, Queryable, QueryResultLike } from './outbox.js'
export { createOutbox } from './outbox.js'
export type { OutboxRelay, OutboxRelayOptions, OutboxRelayStats } from './relay.js'
export { createOutboxRelay } from './relay.js'
export { channelOf, migrationSql } from './sql.js'
