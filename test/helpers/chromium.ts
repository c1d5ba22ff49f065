// Debian's chromium, driven by playwright-core (which downloads no browser of its own). On CI
// (`CI=true`, where .ci/run installs it) a missing or broken chromium fails the browser tests; on a
// machine without one they are skipped, and the run says so.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, type BrowserContextOptions, chromium } from 'playwright-core'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const onCi = !!process.env.CI && !['0', 'false'].includes(process.env.CI.toLowerCase())

/** True when these browser tests are skipped here (no Chromium, not on CI); says so once per file. */
export function chromiumSkipped(name: string): boolean {
  const skipped = !onCi && !existsSync(CHROMIUM)
  if (skipped) {
    console.warn(
      `[${name}] skipped: no Chromium at ${CHROMIUM}. Install it (Debian: sudo apt-get install chromium) ` +
        'or set CHROMIUM_PATH; with CI=true these tests fail instead.',
    )
  }
  return skipped
}

/** A headless browser with a profile of its own; `close()` removes the profile too. */
export async function launchChromium(
  what: string,
  options: BrowserContextOptions = {},
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'mailstream-chromium-'))
  try {
    const context = await chromium.launchPersistentContext(profile, {
      ...options,
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    })
    return {
      context,
      async close() {
        await context.close()
        rmSync(profile, { recursive: true, force: true })
      },
    }
  } catch (error) {
    rmSync(profile, { recursive: true, force: true })
    throw new Error(
      `the ${what} need Chromium at ${CHROMIUM} (Debian: apt-get install chromium; or set CHROMIUM_PATH): ` +
        (error as Error).message,
    )
  }
}
