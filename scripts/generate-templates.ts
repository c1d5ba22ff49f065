// Writes src/templates/builtin/inlined.generated.ts: the built-in templates with their CSS inlined
// at build time. Run after changing layout.html or a built-in template:
//   tsx --import ./scripts/lib/text-register.mjs scripts/generate-templates.ts
// test/templates/inlined.test.ts fails while the committed module is out of date.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import juice from 'juice'
import { inlineBuiltins, inlinedModule } from '../src/templates/builtin/generate.js'

const target = fileURLToPath(new URL('../src/templates/builtin/inlined.generated.ts', import.meta.url))
writeFileSync(target, inlinedModule(inlineBuiltins(juice)))
execFileSync(fileURLToPath(new URL('../node_modules/.bin/biome', import.meta.url)), ['format', '--write', target], {
  stdio: 'inherit',
})
console.log(`wrote ${target}`)
