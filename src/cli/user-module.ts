// Loading a module the user names on the command line (a worker config, a consent store).
import { pathToFileURL } from 'node:url'
import { UsageError } from './usage-error.js'

/**
 * The value a user's module at `path` exports: its default export (or the module), called when it
 * is a function. A `.ts` module is loaded through tsx when it is installed; `what` names the
 * module in the error when it is not.
 */
export async function loadUserModule(path: string, what: string): Promise<unknown> {
  if (/\.[cm]?ts$/.test(path)) {
    try {
      const tsx = (await import('tsx/esm/api' as string)) as { register(): unknown }
      tsx.register()
    } catch {
      throw new UsageError(`a .ts ${what} needs tsx installed (npm install -D tsx), or use a .js ${what}`)
    }
  }
  const module = (await import(pathToFileURL(path).href)) as { default?: unknown }
  const exported = module.default ?? module
  return typeof exported === 'function' ? await (exported as () => unknown)() : exported
}
