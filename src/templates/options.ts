import { z } from 'zod'
import { isValidEmail, LOCALE_RE, TEMPLATE_NAME_RE } from '../job.js'

const VARIABLE_RE = /^[A-Za-z_$][\w$-]*(?:\.[A-Za-z_$][\w$-]*)*$/
/** An http(s) URL with nothing in it that could leave an attribute. */
export const SAFE_URL_RE = /^https?:\/\/[^\s<>"'`]+$/i

const httpUrl = z.string().regex(SAFE_URL_RE, 'must be an http(s) URL')
const colour = z.string().regex(/^#(?:[0-9A-Fa-f]{3}){1,2}$/, 'must be a hex colour like #3b5bdb')
const variables = z.array(z.string().regex(VARIABLE_RE, 'must be a variable name or dotted path')).optional()
const sourceSchema = z.strictObject({
  subject: z.string().optional(),
  html: z.string().optional(),
  text: z.string().optional(),
})
/** A template definition, inline or from `<name>.json`. */
export const definitionSchema = sourceSchema.extend({
  locales: z.record(z.string().regex(LOCALE_RE, 'must be a language tag like ko or en-US'), sourceSchema).optional(),
  required: variables,
  markdown: variables,
  urls: variables,
  recipientData: z.array(z.string().regex(/^[A-Za-z_$][\w$-]*$/, 'must be a top-level variable name')).optional(),
  data: z.record(z.string(), z.unknown()).optional(),
  layout: z.boolean().optional(),
  unsubscribe: z.union([z.boolean(), z.literal('required')]).optional(),
})

/** The options of `createTemplateRenderer`, checked once. */
export const optionsSchema = z.strictObject({
  dir: z.string().min(1).optional(),
  templates: z
    .record(z.string().regex(TEMPLATE_NAME_RE, 'template names are A-Z a-z 0-9 . _ / -'), definitionSchema)
    .optional(),
  layout: z
    .union([
      z.string().refine((value) => value.includes('{{{content}}}'), { message: 'must contain {{{content}}}' }),
      z.literal(false),
    ])
    .optional(),
  partials: z.record(z.string().regex(/^[\w./-]+$/, 'partial names are A-Z a-z 0-9 _ . / -'), z.string()).optional(),
  css: z.string().optional(),
  defaults: z
    .looseObject({
      brandName: z.string().min(1).max(200).optional(),
      brandColor: colour.optional(),
      textColor: colour.optional(),
      backgroundColor: colour.optional(),
      logoUrl: httpUrl.optional(),
      logoUrlDark: httpUrl.optional(),
      frontendUrl: httpUrl.optional(),
    })
    .optional(),
  locale: z.string().regex(LOCALE_RE, 'must be a language tag like ko or en-US').default('en'),
  unsubscribe: z
    .strictObject({
      secret: z.union([
        z.string().min(16, 'must be at least 16 characters'),
        z.array(z.string().min(16, 'must be at least 16 characters')).min(1),
      ]),
      url: httpUrl.optional(),
      mailto: z
        .string()
        .refine((value) => isValidEmail(value), { message: 'must be an email address' })
        .optional(),
      list: z.string().min(1).max(200).optional(),
      ttlSeconds: z.number().int().positive().optional(),
    })
    .optional(),
  builtins: z.boolean().default(true),
  renderTimeoutMs: z.number().int().min(10).max(600_000).default(5000),
})

/** The renderer's options once checked, defaults applied. */
export type RendererConfig = z.output<typeof optionsSchema>
