// The loop of \`start()\`: a run, then the next one sooner while there is more, errors reported with a backoff.
import type { MailstreamError } from '../errors.js'

const MAX_BACKOFF_MS = 30_000

export function createRunLoop(options: {
  run(): Promise<{ claimed: number }>
  batchSize: number
  intervalMs: number
  report(error: MailstreamError): void
}) {
  const config = options
  const { report } = options
  let timer: ReturnType<typeof setTimeout> | undefined
  let running: Promise<void> | undefined
  let started = false
  let failures = 0

  function schedule(ms: number): void {
    if (!started) return
    timer = setTimeout(tick, ms)
  }

  function tick(): void {
    timer = undefined
    running = options.run().then(
      (result) => {
        failures = 0
        // A full batch means more are due: go on at once (after other work of the loop).
        schedule(result.claimed >= config.batchSize ? 0 : config.intervalMs)
      },
      (error: unknown) => {
        failures++
        report(error as MailstreamError)
        schedule(Math.min(MAX_BACKOFF_MS, config.intervalMs * 2 ** Math.min(failures, 10)))
      },
    )
  }

  return {
    start(): void {
      if (started) return
      started = true
      schedule(0)
    },
    async stop(): Promise<void> {
      started = false
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      await running
    },
  }
}
