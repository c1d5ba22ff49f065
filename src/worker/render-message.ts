import { MailstreamError } from '../errors.js'
import type { Address, EmailJob } from '../job.js'
import { SENDER_VARIABLE } from '../korea/message.js'
import type { AdvertisingSender } from '../korea/types.js'
import type { EmailMessage, TemplateRendererLike } from '../transport.js'
import { buildMessage } from './message.js'

export interface MessageRendererOptions {
  templates: TemplateRendererLike | undefined
  /** Data every job of a batch shares, read once per batch. */
  batchData(batchId: string): Promise<Record<string, unknown> | undefined>
  from: Address | undefined
  /** The sender an advertising job's footer shows (the Korean advertising profile). */
  advertiser: AdvertisingSender | undefined
}

/**
 * The message of a job that names a template: its data over its batch's shared data (and an
 * advertising job's sender over both), rendered, then built as `buildMessage` builds any job's.
 */
export function createMessageRenderer(options: MessageRendererOptions) {
  const sharedWithSender = new WeakMap<object, Record<string, unknown>>()
  /** A batch's shared data with the sender in it: one object per batch, so the renderer's per-batch cache holds. */
  function withSender(shared: Record<string, unknown>, sender: AdvertisingSender): Record<string, unknown> {
    let found = sharedWithSender.get(shared)
    if (found === undefined) {
      found = { ...shared, [SENDER_VARIABLE]: sender }
      sharedWithSender.set(shared, found)
    }
    return found
  }

  /** A job that names a template: render it, then build the message from what it gives. */
  async function renderMessage(job: EmailJob, suppressed: ReadonlySet<string>): Promise<EmailMessage> {
    if (!options.templates) {
      throw new MailstreamError(
        'E_CONFIG',
        `job ${job.id} names template '${job.template}' but the worker has no templates`,
        {
          field: 'templates',
        },
      )
    }
    const loaded = job.batchId !== undefined ? await options.batchData(job.batchId) : undefined
    // An advertising job's footer shows the worker's sender: set last, so job data cannot replace it.
    const footer = job.advertising !== undefined ? options.advertiser : undefined
    const shared = loaded && footer ? withSender(loaded, footer) : loaded
    let data = shared ? { ...shared, ...job.data } : (job.data ?? {})
    if (footer) data = { ...data, [SENDER_VARIABLE]: footer }
    const context = {
      ...(job.locale !== undefined && { locale: job.locale }),
      job: { id: job.id, type: job.type, to: job.to, ...(job.batchId !== undefined && { batchId: job.batchId }) },
      // The batch's data as one unchanging object: the renderer renders what depends on it once per batch.
      ...(shared && { shared }),
    }
    const rendered = await options.templates.render(job.template as string, data, context)
    return buildMessage(job, suppressed, options.from, rendered)
  }

  return renderMessage
}
