// `tsx --import ./scripts/lib/text-register.mjs file.ts`: Lua scripts and HTML templates are
// imported as text, as tsup's `loader` and the vitest plugin do, so scripts can run the sources.
import { register } from 'node:module'

register('./text-hooks.mjs', import.meta.url)
