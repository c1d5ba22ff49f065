import { defineConfig, type Options } from 'tsup'

const shared = {
  target: 'node20',
  sourcemap: true,
  treeshake: true,
  loader: { '.lua': 'text' },
  external: ['ioredis'],
} satisfies Partial<Options>

export default defineConfig([
  {
    ...shared,
    entry: {
      index: 'src/index.ts',
      memory: 'src/transports/memory.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    splitting: true,
  },
  {
    // The `mailstream` command: ESM only, no types.
    ...shared,
    entry: { cli: 'src/bin.ts' },
    format: ['esm'],
    external: [...shared.external, 'tsx'],
  },
])
