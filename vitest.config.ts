import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = fileURLToPath(new URL('./src/', import.meta.url))

export default defineConfig({
  plugins: [
    {
      // Lua scripts and built-in templates are imported as text, as tsup's `loader` does in the build.
      name: 'text-imports',
      transform(_code, id) {
        if (!id.endsWith('.lua') && !id.endsWith('.html')) return null
        return { code: `export default ${JSON.stringify(readFileSync(id, 'utf8'))}`, map: null }
      },
    },
  ],
  resolve: {
    // As tsconfig's paths do for tsc and tsx: the examples import the package by name and get the sources.
    alias: [
      { find: /^mailstream$/, replacement: `${src}index.ts` },
      { find: /^mailstream\/dashboard$/, replacement: `${src}dashboard/index.ts` },
      { find: /^mailstream\/testing$/, replacement: `${src}testing/index.ts` },
      { find: /^mailstream\/pg$/, replacement: `${src}pg/index.ts` },
      { find: /^mailstream\/sequences$/, replacement: `${src}sequences/index.ts` },
      { find: /^mailstream\/(.+)$/, replacement: `${src}transports/$1.ts` },
    ],
  },
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: { name: 'redis', globalSetup: ['test/setup/redis.ts'], include: ['test/**/*.test.ts'] },
      },
      {
        // The core suite once more against a real 3-master Redis Cluster, with hash-tagged prefixes.
        extends: true,
        test: {
          name: 'cluster',
          globalSetup: ['test/setup/redis-cluster.ts'],
          include: [
            'test/queue/queue.test.ts',
            'test/worker/worker.test.ts',
            'test/worker/recovery.test.ts',
            'test/queue/batch-progress.test.ts',
          ],
        },
      },
    ],
  },
})
