import { readFileSync } from 'node:fs'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [
    {
      // Lua scripts are imported as text, as tsup's `loader: { '.lua': 'text' }` does in the build.
      name: 'lua-as-text',
      transform(_code, id) {
        if (!id.endsWith('.lua')) return null
        return { code: `export default ${JSON.stringify(readFileSync(id, 'utf8'))}`, map: null }
      },
    },
  ],
  test: {
    globalSetup: ['test/setup/redis.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
