import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'

export const root = join(import.meta.dirname, '..', '..')

/**
 * Builds the package as `npm run build` does, into a folder inside the project (so that the
 * build resolves its dependencies from node_modules). Returns the folder and a cleanup.
 */
export function buildPackage(): { dir: string; cleanup(): void } {
  mkdirSync(join(root, '.tmp'), { recursive: true })
  const dir = mkdtempSync(join(root, '.tmp', 'build-'))
  execFileSync(join(root, 'node_modules/.bin/tsup'), ['--out-dir', dir, '--silent'], { cwd: root, stdio: 'pipe' })
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}
