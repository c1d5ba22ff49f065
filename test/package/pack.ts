import { execFileSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildPackage, root } from '../helpers/build.js'

export interface PackedPackage {
  /** The built files, as `dist/` holds them after `npm run build`. */
  dist: string
  /** The tarball `npm pack` makes of the package. */
  tarball: string
  /** Its size in bytes, compressed. */
  size: number
  cleanup(): void
}

/** Builds the package as `npm run build` does and packs it as `npm publish` would. */
export function packPackage(): PackedPackage {
  const build = buildPackage()
  const dir = mkdtempSync(join(root, '.tmp', 'pack-'))
  const cleanup = () => {
    build.cleanup()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (const file of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE']) {
      cpSync(join(root, file), join(dir, file))
    }
    cpSync(build.dir, join(dir, 'dist'), { recursive: true })
    const output = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString()
    const [{ filename }] = JSON.parse(output) as [{ filename: string }]
    const tarball = join(dir, filename)
    return { dist: build.dir, tarball, size: statSync(tarball).size, cleanup }
  } catch (error) {
    cleanup()
    throw error
  }
}

/**
 * A user's project folder with the tarball unpacked as `node_modules/mailstream`. It sits in the
 * repository's `.tmp/`, so everything else (jest, vitest, ioredis, the package's dependencies)
 * resolves from this repository's node_modules, as after `npm install`, without the network.
 */
export function createUserProject(tarball: string, files: Record<string, string>): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(root, '.tmp', 'user-'))
  const target = join(dir, 'node_modules', 'mailstream')
  mkdirSync(target, { recursive: true })
  execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1'])
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true })
    writeFileSync(join(dir, name), text)
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** The environment for a test runner started from within this run: without vitest's own markers. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(VITEST|JEST|NODE_OPTIONS$|NODE_ENV$|TEST$)/.test(key)) env[key] = value
  }
  return { ...env, ...extra }
}

export const version = (name: string): string =>
  JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version
