/**
 * Configuration from environment variables, shared by the Express and Hono examples. Every
 * variable is listed in the README's Examples section.
 */
import { resolve } from 'node:path'
import type { AdvertisingSender } from 'mailstream'

export type TransportConfig =
  | { kind: 'ses'; region: string; configurationSetName?: string }
  | { kind: 'smtp'; url: string }
  | { kind: 'preview'; dir: string }

export interface Config {
  port: number
  /** Unset: the host starts a redis-server of its own (development). */
  redisUrl?: string
  prefix: string
  /** Where this service is reached from a browser: links in emails point here. */
  publicUrl: string
  mailFrom: string
  brandName: string
  codeSecret: string
  unsubscribeSecret: string
  transport: TransportConfig
  /** Recipients per second for the worker (your SES MaxSendRate); unset: no limit. */
  rateLimitPerSecond?: number
  /** SNS topics the SES webhook accepts; empty: the webhook answers 404. */
  snsTopicArns: string[]
  /** Basic auth for the dashboard and for publishing; unset: the dashboard is read-only and open. */
  dashboardPassword?: string
  /**
   * Advertising email (정보통신망법 제50조, docs/korea.md): who sends it, shown in the footer of a
   * sponsored issue and named in consent notices and reminders.
   */
  advertising: AdvertisingConfig
  /** PostgreSQL (Express example only). */
  databaseUrl: string
  /** Lines to print at start: development defaults in use. */
  warnings: string[]
}

export interface AdvertisingConfig {
  /** AD_SENDER_NAME, AD_SENDER_EMAIL, AD_SENDER_PHONE, AD_SENDER_ADDRESS; a demo sender when unset. */
  sender: AdvertisingSender
  /** AD_CONSENT_TEXT_VERSION: the version of the consent wording the form shows, stored with each consent. Default `v1`. */
  consentTextVersion: string
  /** AD_QUIET_HOURS=off sends advertising at any hour; default: held 21:00-08:00 Seoul time. */
  quietHours: boolean
  /** How often the consent reminder run (제50조 제8항) starts. Default once a day. */
  reminderIntervalMs: number
}

/** The demo sender: set the AD_SENDER_* variables to your company's real details before sending advertising. */
export const DEMO_AD_SENDER: AdvertisingSender = {
  name: 'Vality Inc.',
  email: 'ad@example.com',
  phone: '02-1234-5678',
  address: '110 Sejong-daero, Jung-gu, Seoul',
}

const DEV_CODE_SECRET = 'dev-only-code-secret-change-me'
const DEV_UNSUBSCRIBE_SECRET = 'dev-only-unsubscribe-secret-change-me'

function positiveNumber(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw === '') return undefined
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`)
  return value
}

/** Reads the configuration; throws on a bad value, and in production on a missing secret. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const warnings: string[] = []
  const production = env.NODE_ENV === 'production'

  function secret(name: string, devDefault: string): string {
    const value = env[name]
    if (value) {
      if (value.length < 16) throw new Error(`${name} must be at least 16 characters`)
      return value
    }
    if (production) throw new Error(`${name} must be set when NODE_ENV=production`)
    warnings.push(`${name} is not set: using a development secret (set it in production)`)
    return devDefault
  }

  const port = positiveNumber(env, 'PORT') ?? 3000
  let transport: TransportConfig
  if (env.AWS_REGION) {
    transport = { kind: 'ses', region: env.AWS_REGION }
    if (env.SES_CONFIGURATION_SET) transport.configurationSetName = env.SES_CONFIGURATION_SET
  } else if (env.SMTP_URL) {
    transport = { kind: 'smtp', url: env.SMTP_URL }
  } else {
    transport = { kind: 'preview', dir: resolve('.mailstream-preview') }
  }

  const config: Config = {
    port,
    prefix: env.MAILSTREAM_PREFIX || 'email',
    publicUrl: (env.PUBLIC_URL || `http://localhost:${port}`).replace(/\/+$/, ''),
    mailFrom: env.MAIL_FROM || 'Vality <newsletter@example.com>',
    brandName: env.BRAND_NAME || 'Vality',
    codeSecret: secret('CODE_SECRET', DEV_CODE_SECRET),
    unsubscribeSecret: secret('UNSUBSCRIBE_SECRET', DEV_UNSUBSCRIBE_SECRET),
    transport,
    snsTopicArns: (env.SNS_TOPIC_ARNS ?? '')
      .split(',')
      .map((arn) => arn.trim())
      .filter(Boolean),
    advertising: {
      sender: {
        name: env.AD_SENDER_NAME || DEMO_AD_SENDER.name,
        email: env.AD_SENDER_EMAIL || DEMO_AD_SENDER.email,
        phone: env.AD_SENDER_PHONE || DEMO_AD_SENDER.phone,
        address: env.AD_SENDER_ADDRESS || DEMO_AD_SENDER.address,
      },
      consentTextVersion: env.AD_CONSENT_TEXT_VERSION || 'v1',
      quietHours: env.AD_QUIET_HOURS !== 'off',
      reminderIntervalMs: 24 * 3600_000,
    },
    databaseUrl: env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
    warnings,
  }
  if (!env.AD_SENDER_NAME || !env.AD_SENDER_EMAIL || !env.AD_SENDER_PHONE || !env.AD_SENDER_ADDRESS) {
    warnings.push('AD_SENDER_NAME/EMAIL/PHONE/ADDRESS are not all set: sponsored issues show a demo sender')
  }
  if (env.REDIS_URL) config.redisUrl = env.REDIS_URL
  const perSecond = positiveNumber(env, 'RATE_LIMIT_PER_SECOND')
  if (perSecond !== undefined) config.rateLimitPerSecond = perSecond
  if (env.DASHBOARD_PASSWORD) config.dashboardPassword = env.DASHBOARD_PASSWORD
  return config
}
