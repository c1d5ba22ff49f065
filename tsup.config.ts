import { defineConfig } from 'tsup'

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    memory: 'src/transports/memory.ts',
    ses: 'src/transports/ses.ts',
    smtp: 'src/transports/smtp.ts',
    preview: 'src/transports/preview.ts',
  },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  splitting: true,
  treeshake: true,
  loader: { '.lua': 'text' },
  // Peers, loaded from the user's node_modules; nodemailer subpaths too (the MIME composer).
  external: ['ioredis', '@aws-sdk/client-sesv2', 'nodemailer', /^nodemailer\//],
})
