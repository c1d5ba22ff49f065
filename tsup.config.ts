import { defineConfig } from 'tsup'

/** The package's entry points, one per subpath export. */
const library = {
  index: 'src/index.ts',
  memory: 'src/transports/memory.ts',
  ses: 'src/transports/ses.ts',
  smtp: 'src/transports/smtp.ts',
  preview: 'src/transports/preview.ts',
  failover: 'src/transports/failover.ts',
  dashboard: 'src/dashboard/index.ts',
  testing: 'src/testing/index.ts',
  pg: 'src/pg/index.ts',
  sequences: 'src/sequences/index.ts',
}

export default defineConfig({
  // The `mailstream` command (ESM only) is built with the library, so that it shares its chunks instead of a copy.
  entry: { ...library, cli: 'src/cli/bin.ts' },
  format: ['esm', 'cjs'],
  dts: { entry: library },
  target: 'node20',
  // No source maps: the code ships unminified, and maps with their sources were most of the package.
  sourcemap: false,
  treeshake: true,
  splitting: true,
  clean: true,
  loader: { '.lua': 'text', '.html': 'text' },
  // Peers, loaded from the user's node_modules; nodemailer subpaths too (the MIME composer).
  external: ['ioredis', '@aws-sdk/client-sesv2', 'nodemailer', /^nodemailer\//, 'pg', '@opentelemetry/api', 'tsx'],
  esbuildOptions(options, { format }) {
    if (format !== 'cjs') return
    options.entryPoints = library
    // Lazy dependencies become `require()`: jest runs CommonJS in a VM where native `import()` fails.
    options.supported = { ...options.supported, 'dynamic-import': false }
  },
})
