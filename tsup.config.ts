import { defineConfig, type Options } from 'tsup'

const shared = {
  target: 'node20',
  sourcemap: true,
  treeshake: true,
  loader: { '.lua': 'text', '.html': 'text' },
  // Peers, loaded from the user's node_modules; nodemailer subpaths too (the MIME composer).
  external: ['ioredis', '@aws-sdk/client-sesv2', 'nodemailer', /^nodemailer\//],
} satisfies Partial<Options>

export default defineConfig([
  {
    ...shared,
    entry: {
      index: 'src/index.ts',
      memory: 'src/transports/memory.ts',
      ses: 'src/transports/ses.ts',
      smtp: 'src/transports/smtp.ts',
      preview: 'src/transports/preview.ts',
      dashboard: 'src/dashboard/index.ts',
    },
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    splitting: true,
  },
  {
    // The `mailstream` command: ESM only, no types.
    ...shared,
    entry: { cli: 'src/cli/bin.ts' },
    format: ['esm'],
    external: [...shared.external, 'tsx'],
  },
])
