// Fails when src/ has an import cycle (type-only imports count: they tie the modules' designs together).
// Run by `npm test`; prints each cycle as a chain of files.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const src = join(root, 'src')

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return files(path)
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : []
  })
}

function target(from, specifier) {
  const base = resolve(dirname(from), specifier)
  for (const candidate of [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')]) {
    try {
      if (statSync(candidate).isFile()) return candidate
    } catch {}
  }
  return undefined
}

const graph = new Map()
for (const file of files(src)) {
  const text = readFileSync(file, 'utf8')
  const deps = new Set()
  // TypeScript's own scanner: imports, re-exports and import() calls, never text inside a string.
  for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
    const to = fileName.startsWith('.') ? target(file, fileName) : undefined
    if (to) deps.add(to)
  }
  graph.set(file, deps)
}

// Depth-first search; a back edge closes a cycle.
const cycles = []
const state = new Map() // file -> 'open' | 'done'
const stack = []
function visit(file) {
  state.set(file, 'open')
  stack.push(file)
  for (const dep of graph.get(file) ?? []) {
    if (state.get(dep) === 'open') cycles.push([...stack.slice(stack.indexOf(dep)), dep])
    else if (!state.has(dep)) visit(dep)
  }
  stack.pop()
  state.set(file, 'done')
}
for (const file of graph.keys()) if (!state.has(file)) visit(file)

if (cycles.length > 0) {
  for (const cycle of cycles) console.error(`import cycle: ${cycle.map((file) => relative(root, file)).join(' -> ')}`)
  process.exit(1)
}
console.log(`imports: ${graph.size} modules in src/, no cycle`)
