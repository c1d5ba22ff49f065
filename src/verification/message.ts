import type { EmailJobInput } from '../job.js'

/** What `build` receives to shape the verification email. */
export interface VerificationContext {
  /** The address, trimmed and lower-cased. */
  email: string
  code: string
  /** Epoch ms. */
  expiresAt: number
  expiresInMinutes: number
  locale?: string
  ip?: string
}

/**
 * The job that carries a code: the `verification-code` template, high priority, with the fields
 * `build` returns laid over it. Overrides with `html` or `text` but no `template` drop the template.
 */
export function verificationJob(
  context: VerificationContext,
  build?: (context: VerificationContext) => Partial<EmailJobInput>,
): EmailJobInput {
  const { email, code, expiresInMinutes, locale } = context
  const job: EmailJobInput = {
    type: 'verification-code',
    to: email,
    template: 'verification-code',
    data: { code, expiresInMinutes },
    priority: 'high',
    ...(locale !== undefined && { locale }),
  }
  const overrides = build?.(context) ?? {}
  Object.assign(job, overrides)
  if (!('template' in overrides) && (overrides.html !== undefined || overrides.text !== undefined)) {
    delete job.template
  }
  return job
}
