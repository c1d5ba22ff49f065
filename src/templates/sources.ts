import { readFile } from 'node:fs/promises'
import { resolve, sep } from 'node:path'
import { LOCALE_RE } from '../job.js'
import { BUILTIN_TEMPLATES } from './builtin/index.js'
import { templateError } from './errors.js'
import { definitionSchema } from './options.js'
import type { TemplateDefinition, TemplateSource } from './types.js'

/** Where templates come from: given inline, a folder, and the built-ins. */
export interface TemplateSourcesOptions {
  templates?: Record<string, TemplateDefinition> | undefined
  dir?: string | undefined
  builtins: boolean
  /** Locale when a job names none. */
  locale: string
}

/** A template found by name, and whether it is one of the built-ins (which keep their own layout). */
export interface FoundTemplate {
  definition: TemplateDefinition
  builtin: boolean
}

/** Finds template definitions by name and picks their locale variant. */
export interface TemplateSources {
  /** The locales to try, in order: the job's locale, its language, the default locale, its language. */
  localeChain(locale: string | undefined): string[]
  /** The definition of a template: inline, then from `dir`, then built in. */
  definitionOf(name: string, chain: readonly string[]): Promise<FoundTemplate>
  /** Picks the locale variant: the job's locale, its language, the default locale, its language, then any. */
  pick(definition: TemplateDefinition, chain: readonly string[]): { source: TemplateSource; locale: string }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** The `<name>.<locale>.html` and `.txt` files of a template, by locale. */
async function readLocales(base: string, chain: readonly string[]): Promise<Record<string, TemplateSource>> {
  const locales: Record<string, TemplateSource> = {}
  for (const tag of chain) {
    const html = await readOptional(`${base}.${tag}.html`)
    const text = await readOptional(`${base}.${tag}.txt`)
    if (html !== undefined || text !== undefined) {
      locales[tag] = { ...(html !== undefined && { html }), ...(text !== undefined && { text }) }
    }
  }
  return locales
}

function parseMeta(name: string, json: string | undefined): Record<string, unknown> {
  if (json === undefined) return {}
  try {
    return JSON.parse(json)
  } catch (cause) {
    throw templateError(name, `${name}.json is not valid JSON`, 'template', cause)
  }
}

/** A template from `dir`: `<name>.html`, `<name>.<locale>.html`, `.txt` likewise, and `<name>.json`. */
async function readFromDir(
  root: string,
  name: string,
  chain: readonly string[],
): Promise<TemplateDefinition | undefined> {
  const base = resolve(root, name)
  if (name.split('/').some((part) => part === '..' || part === '.' || part === '') || !base.startsWith(root + sep)) {
    throw templateError(name, 'template names may not leave the template folder', 'template')
  }
  const locales = await readLocales(base, chain)
  const html = await readOptional(`${base}.html`)
  const text = await readOptional(`${base}.txt`)
  const json = await readOptional(`${base}.json`)
  if (html === undefined && text === undefined && Object.keys(locales).length === 0) return undefined
  const { subject, ...rest } = parseMeta(name, json)
  const definition: Record<string, unknown> = { ...rest, locales }
  // A subject may be one string, or one per locale.
  if (typeof subject === 'object' && subject !== null) {
    for (const [tag, value] of Object.entries(subject)) {
      const key = tag.toLowerCase()
      if (locales[key]) locales[key].subject = value as string
      else if (typeof value === 'string') locales[key] = { subject: value }
    }
  } else if (subject !== undefined) definition.subject = subject
  if (html !== undefined) definition.html = html
  if (text !== undefined) definition.text = text
  const parsed = definitionSchema.safeParse(definition)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw templateError(name, `${name}.json: ${issue?.path.join('.')}: ${issue?.message}`, 'template', parsed.error)
  }
  return parsed.data as TemplateDefinition
}

/** Template sources and locale resolution; reads `dir` on every call (the compiled cache sits above). */
export function createTemplateSources(options: TemplateSourcesOptions): TemplateSources {
  const dir = options.dir !== undefined ? resolve(options.dir) : undefined

  function localeChain(locale: string | undefined): string[] {
    const chain: string[] = []
    for (const tag of [locale, options.locale]) {
      if (typeof tag !== 'string' || !LOCALE_RE.test(tag)) continue
      for (const candidate of [tag.toLowerCase(), (tag.split('-')[0] as string).toLowerCase()]) {
        if (!chain.includes(candidate)) chain.push(candidate)
      }
    }
    return chain
  }

  async function definitionOf(name: string, chain: readonly string[]): Promise<FoundTemplate> {
    const inline = options.templates?.[name]
    if (inline) return { definition: inline, builtin: false }
    if (dir !== undefined) {
      const fromDir = await readFromDir(dir, name, chain)
      if (fromDir) return { definition: fromDir, builtin: false }
    }
    const builtin = options.builtins ? BUILTIN_TEMPLATES[name as keyof typeof BUILTIN_TEMPLATES] : undefined
    if (builtin && Object.hasOwn(BUILTIN_TEMPLATES, name)) return { definition: builtin, builtin: true }
    throw templateError(name, 'no such template', 'template')
  }

  function pick(definition: TemplateDefinition, chain: readonly string[]): { source: TemplateSource; locale: string } {
    const variants = new Map(
      Object.entries(definition.locales ?? {}).map(([tag, source]) => [tag.toLowerCase(), source]),
    )
    let locale = chain.find((tag) => variants.has(tag))
    const hasFallback = definition.html !== undefined || definition.text !== undefined
    if (locale === undefined && !hasFallback && variants.size > 0) {
      locale = variants.has('en') ? 'en' : (variants.keys().next().value as string)
    }
    const variant = locale !== undefined ? variants.get(locale) : undefined
    return {
      locale: locale ?? chain[0] ?? options.locale,
      source: {
        subject: variant?.subject ?? definition.subject,
        html: variant?.html ?? definition.html,
        text: variant?.text ?? definition.text,
      } as TemplateSource,
    }
  }

  return { localeChain, definitionOf, pick }
}
