import type { EmailJob } from '../../src/job.js'
import type { Work } from '../../src/worker/types.js'

/** A validated job as the worker reads it from its entry. */
export function makeJob(overrides: Partial<EmailJob> = {}): EmailJob {
  return {
    id: 'job-1',
    type: 'welcome',
    to: [{ address: 'ada@example.com', name: 'Ada' }],
    subject: 'Hello',
    text: 'Hi Ada',
    priority: 'normal',
    maxAttempts: 3,
    createdAt: 1_700_000_000_000,
    ...overrides,
  }
}

/** Work for `job` as the fetcher gives it: the entry's recipients lower-case and ','-joined. */
export function makeWork(job: EmailJob | null = makeJob(), overrides: Partial<Work> = {}): Work {
  const rcpt = job ? [...job.to, ...(job.cc ?? []), ...(job.bcc ?? [])].map((a) => a.address.toLowerCase()) : []
  return {
    delivery: {
      streamIndex: 1,
      entryId: '1700000000000-0',
      jobId: job?.id ?? 'job-1',
      payload: job ? JSON.stringify(job) : '',
      rcpt: rcpt.join(','),
      deliveries: 1,
    },
    verdict: 'send',
    attempts: 0,
    suppressed: [],
    ...overrides,
  }
}
