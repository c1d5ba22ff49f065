export * from '../../scripts/lib/redis-server.js'
