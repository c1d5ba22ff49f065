import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { buildPackage, root } from './helpers/build.js'

// Builds the package as `npm run build` does and checks what users import.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
let outDir: string
let cleanup = () => {}

beforeAll(() => {
  const build = buildPackage()
  outDir = build.dir
  cleanup = build.cleanup
}, 120_000)
afterAll(() => cleanup())

const subpaths = Object.keys(pkg.exports).filter((key) => key !== './package.json')

test.each(subpaths)('%s loads as ESM and CJS with the same exports', (subpath) => {
  const entry = subpath === '.' ? 'index' : subpath.slice(2)
  const script = `
    const cjs = require(${JSON.stringify(join(outDir, `${entry}.cjs`))});
    import(${JSON.stringify(join(outDir, `${entry}.js`))}).then((esm) => {
      const names = (m) => Object.keys(m).filter((k) => k !== 'default' && k !== 'module.exports').sort().join(',');
      console.log(JSON.stringify({ esm: names(esm), cjs: names(cjs) }));
    });`
  const { esm, cjs } = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root }).toString())
  expect(esm.length).toBeGreaterThan(0)
  expect(esm).toBe(cjs)
})

test('importing mailstream alone loads no transport SDK', () => {
  const script = `
    require(${JSON.stringify(join(outDir, 'index.cjs'))});
    const loaded = Object.keys(require.cache).filter((file) => /node_modules[\\\\/](nodemailer|@aws-sdk)[\\\\/]/.test(file));
    console.log(JSON.stringify(loaded));`
  expect(JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root }).toString())).toEqual([])
})

test.each([
  ['ses', ['@aws-sdk'], ['nodemailer', 'ioredis']],
  ['smtp', ['nodemailer'], ['@aws-sdk', 'ioredis']],
  ['preview', [], ['nodemailer', '@aws-sdk', 'ioredis']],
  ['memory', [], ['nodemailer', '@aws-sdk', 'ioredis']],
  ['dashboard', [], ['nodemailer', '@aws-sdk']],
])('mailstream/%s loads %j and not %j', (entry, expected, unexpected) => {
  const script = `
    require(${JSON.stringify(join(outDir, `${entry}.cjs`))});
    const loaded = new Set(Object.keys(require.cache).map((file) => /node_modules[\\/]((?:@[^\\/]+)|[^\\/@]+)[\\/]/.exec(file)?.[1]));
    console.log(JSON.stringify([...loaded].filter(Boolean)));`
  const loaded: string[] = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: root }).toString())
  for (const name of expected) expect(loaded).toContain(name)
  for (const name of unexpected) expect(loaded).not.toContain(name)
})

test('every export in package.json points at a built file', () => {
  for (const subpath of subpaths) {
    const entry = subpath === '.' ? 'index' : subpath.slice(2)
    for (const condition of ['import', 'require']) {
      const target = pkg.exports[subpath][condition]
      expect(target.default).toMatch(new RegExp(`^\\./dist/${entry}\\.c?js$`))
      expect(target.types).toMatch(new RegExp(`^\\./dist/${entry}\\.d\\.c?ts$`))
      readFileSync(join(outDir, target.default.slice('./dist/'.length)))
      readFileSync(join(outDir, target.types.slice('./dist/'.length)))
    }
  }
})

test('the bin points at the built command', () => {
  expect(pkg.bin).toEqual({ mailstream: './dist/cli.js' })
  expect(readFileSync(join(outDir, 'cli.js'), 'utf8').startsWith('#!/usr/bin/env node')).toBe(true)
})
