import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { publint } from 'publint'
import { formatMessage } from 'publint/utils'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { root } from './helpers/build.js'
import { redisUrl } from './helpers/redis.js'
import { childEnv, createUserProject, type PackedPackage, packPackage } from './package/pack.js'
import { jestProject, vitestProject } from './package/projects.js'

// Builds the package as `npm run build` does, packs it as `npm publish` would, and checks what users get.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
let packed: PackedPackage
let outDir: string

beforeAll(() => {
  packed = packPackage()
  outDir = packed.dist
}, 400_000)
afterAll(() => packed?.cleanup())

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
  ['failover', [], ['nodemailer', '@aws-sdk', 'ioredis']],
  ['dashboard', [], ['nodemailer', '@aws-sdk']],
  ['pg', [], ['pg', 'nodemailer', '@aws-sdk', 'ioredis']],
  ['sequences', [], ['nodemailer', '@aws-sdk']],
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

test('the tarball holds no source maps, and the command imports the library instead of a copy', () => {
  const files = execFileSync('tar', ['-tzf', packed.tarball]).toString().trim().split('\n')
  expect(files.filter((file) => file.endsWith('.map'))).toEqual([])
  const cli = readFileSync(join(outDir, 'cli.js'), 'utf8')
  expect(cli).not.toMatch(/function createEmailQueue\b/)
  expect(cli).not.toMatch(/function createEmailWorker\b/)
  // About 500 kB packed with the outbox, sequences and the Korean profile (310 kB without them);
  // source maps with their sources and the library twice would about double it.
  expect(packed.size).toBeLessThan(650_000)
})

test('the CommonJS build loads its lazy dependencies with require, not import()', () => {
  for (const file of execFileSync('tar', ['-tzf', packed.tarball]).toString().trim().split('\n')) {
    if (!file.endsWith('.cjs')) continue
    expect({
      file,
      dynamicImport: /\bimport\(/.test(readFileSync(join(outDir, file.slice('package/dist/'.length)), 'utf8')),
    }).toEqual({
      file,
      dynamicImport: false,
    })
  }
})

test('are-the-types-wrong finds no problem, node10 resolution included', () => {
  const attw = join(root, 'node_modules', '.bin', 'attw')
  let output: string
  try {
    output = execFileSync(attw, [packed.tarball, '--format', 'ascii', '--no-color', '--no-emoji'], {
      cwd: root,
      stdio: 'pipe',
    }).toString()
  } catch (error) {
    const { stdout, stderr } = error as { stdout: Buffer; stderr: Buffer }
    throw new Error(`attw failed:\n${stdout}${stderr}`)
  }
  expect(output).toContain('No problems found')
}, 60_000)

test('publint reports nothing', async () => {
  const tarball = readFileSync(packed.tarball)
  const { messages, pkg: linted } = await publint({
    pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) },
  })
  expect(messages.map((message) => formatMessage(message, linted, { color: false }))).toEqual([])
}, 60_000)

test.each([
  ['jest 30 + ts-jest (CommonJS)', jestProject, ['jest/bin/jest.js', '--ci']],
  ['vitest (ESM)', vitestProject, ['vitest/vitest.mjs', 'run']],
])(
  'a %s project sends a templated email from the installed tarball',
  (_name, files, [runner, ...args]) => {
    const project = createUserProject(packed.tarball, files)
    try {
      execFileSync(process.execPath, [join(root, 'node_modules', runner!), ...args], {
        cwd: project.dir,
        env: childEnv({ REDIS_URL: redisUrl(), CI: 'true', FORCE_COLOR: '0' }),
        stdio: 'pipe',
        timeout: 120_000,
      })
    } catch (error) {
      const { stdout, stderr } = error as { stdout?: Buffer; stderr?: Buffer }
      throw new Error(`the project's tests failed:\n${stdout ?? ''}${stderr ?? ''}`)
    } finally {
      project.cleanup()
    }
  },
  150_000,
)
