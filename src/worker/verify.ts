// The transport's health check at start (`verifyTransport`): reported, never fatal, bounded.
import { MailstreamError } from '../errors.js'
import { withTimeout } from '../timeout.js'
import type { Transport } from '../transport.js'

interface Verifiable {
  verify(): Promise<unknown>
}

const isVerifiable = (transport: Transport): transport is Transport & Verifiable =>
  typeof (transport as Partial<Verifiable>).verify === 'function'

/**
 * Runs `transport.verify()` (an SMTP transport's connection check, a failover transport's check of
 * each member) within `timeoutMs`, and reports a failure, or each failed member a failover
 * transport lists, to `report` as `E_TRANSPORT`. Never rejects; a transport without `verify` is
 * not checked.
 */
export async function verifyTransport(
  transport: Transport,
  timeoutMs: number,
  report: (error: MailstreamError) => void,
): Promise<void> {
  if (!isVerifiable(transport)) return
  const prefix = `transport ${transport.name}: verify at start`
  try {
    const result = await withTimeout(
      Promise.resolve().then(() => transport.verify()),
      timeoutMs,
      () => new Error(`no answer within ${timeoutMs} ms`),
    )
    // A failover transport answers with one result per member and never throws.
    if (Array.isArray(result)) {
      for (const member of result as { transport?: unknown; status?: unknown; error?: unknown }[]) {
        if (member?.status === 'failed') {
          report(
            new MailstreamError(
              'E_TRANSPORT',
              `${prefix}: ${String(member.transport)} failed: ${String(member.error)}`,
            ),
          )
        }
      }
    }
  } catch (error) {
    report(
      new MailstreamError(
        'E_TRANSPORT',
        `${prefix} failed: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
        },
      ),
    )
  }
}
