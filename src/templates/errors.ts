import { MailstreamError } from '../errors.js'

/** An `E_TEMPLATE` error that names the template and, when known, the field at fault. */
export function templateError(template: string, message: string, field?: string, cause?: unknown): MailstreamError {
  return new MailstreamError('E_TEMPLATE', `template '${template}': ${message}`, {
    ...(field !== undefined && { field }),
    ...(cause !== undefined && { cause }),
  })
}

/** True for a `MailstreamError` with code `E_TEMPLATE`. */
export const isTemplateError = (error: unknown): error is MailstreamError =>
  error instanceof MailstreamError && error.code === 'E_TEMPLATE'
