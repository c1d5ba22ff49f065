import { readFileSync } from 'node:fs'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [
    {
      // Lua scripts and built-in templates are imported as text, as tsup's `loader` does in the build.
      name: 'lua-as-text',
      transform(_code, id) {
        if (!id.endsWith('.lua') && !id.endsWith('.html')) return null
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
