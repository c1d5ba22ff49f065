import type { Transport } from 'mailstream'
import type { TransportConfig } from './config.js'

/**
 * The transport the environment asks for. Each one is imported only when chosen, so the preview
 * and SMTP transports need no AWS SDK and SES needs no nodemailer (unless it sends attachments).
 */
export async function createTransport(config: TransportConfig): Promise<Transport> {
  switch (config.kind) {
    case 'ses': {
      const { createSesTransport } = await import('mailstream/ses')
      return createSesTransport({
        region: config.region,
        ...(config.configurationSetName !== undefined && { configurationSetName: config.configurationSetName }),
      })
    }
    case 'smtp': {
      const { createSmtpTransport } = await import('mailstream/smtp')
      return createSmtpTransport({ url: config.url })
    }
    case 'preview': {
      const { createPreviewTransport } = await import('mailstream/preview')
      return createPreviewTransport({ dir: config.dir })
    }
  }
}

/** How the transport is described in the start-up log (no credentials: an SMTP URL may hold a password). */
export function describeTransport(config: TransportConfig): string {
  switch (config.kind) {
    case 'ses':
      return `SES in ${config.region}${config.configurationSetName ? ` (configuration set ${config.configurationSetName})` : ''}`
    case 'smtp':
      return `SMTP at ${new URL(config.url).host}`
    case 'preview':
      return `preview files in ${config.dir} (open index.html there)`
  }
}
