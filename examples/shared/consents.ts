/**
 * Advertising consents (정보통신망법 제50조): what the routes and the queue need from the app's
 * consent records, and the daily reminder run (제8항). The Express example keeps them in
 * PostgreSQL (examples/express/consents.ts); the Hono example has none, so its consent routes and
 * sponsored issues answer 501.
 */
import { type AdvertisingConsent, type ConsentStore, type EmailQueue, runConsentReminders } from 'mailstream'
import type { Config } from './config.js'

/** One change as stored: `at` is the stored time, what makes a retried notice a duplicate. */
export interface StoredChange {
  /** False when the record already said so (a second consent, a second withdrawal). */
  changed: boolean
  at: Date
}

export interface AdvertisingConsents extends ConsentStore {
  /** The current (not withdrawn) consents of `addresses` (lower case): the queue's consent lookup. */
  lookup(addresses: string[]): Promise<AdvertisingConsent[]>
  /** Records a consent (again, after a withdrawal); an existing current consent is kept as it is. */
  give(
    address: string,
    details: { method: string; source: string; textVersion: string; locale?: string },
  ): Promise<StoredChange>
  /** Records a withdrawal; null when the address never consented. */
  withdraw(address: string, details: { method: string }): Promise<StoredChange | null>
}

export interface ReminderRun {
  /** One run now (at `now`, a fake clock in tests); a run already going is awaited instead of a second. */
  runOnce(now?: Date): Promise<Awaited<ReturnType<typeof runConsentReminders>>>
  /** Runs every `config.advertising.reminderIntervalMs`, the first one shortly after the start. */
  start(): void
  /**
   * Stops the timer and waits for a run in flight, at most `STOP_WAIT_MS`: a run cut short by the
   * shutdown sends nothing twice (each reminder is keyed by its period), the next run goes on.
   */
  stop(): Promise<void>
}

/** Records read per run: a larger table is finished by the next runs (`complete: false`). */
const MAX_CONSENTS_PER_RUN = 20_000
/** Longest wait for one page of the consent table. */
const STORE_TIMEOUT_MS = 10_000
/** How long `stop()` waits for a run in flight. */
const STOP_WAIT_MS = 5000
/** The first run waits this long after the start, so that a restart loop does not hammer the table. */
const FIRST_RUN_DELAY_MS = 60_000

/** The 제8항 reminder run, on an interval started and stopped with the host. */
export function createReminderRun(options: {
  config: Config
  queue: EmailQueue
  consents: AdvertisingConsents
  log: (line: string) => void
}): ReminderRun {
  const { config, queue, consents, log } = options
  let timer: NodeJS.Timeout | undefined
  let running: ReturnType<ReminderRun['runOnce']> | undefined

  function runOnce(now?: Date): ReturnType<ReminderRun['runOnce']> {
    running ??= runConsentReminders(queue, consents, {
      sender: config.advertising.sender,
      // The same page answers the keep and withdraw links: GET shows a button, POST acts.
      links: { secret: config.unsubscribeSecret, url: `${config.publicUrl}/api/consents/action` },
      maxConsents: MAX_CONSENTS_PER_RUN,
      storeTimeoutMs: STORE_TIMEOUT_MS,
      ...(now && { now }),
    })
      .then((result) => {
        log(
          `consents: reminder run: ${result.enqueued} enqueued, ${result.skipped} already enqueued, ` +
            `${result.failed.length} failed${result.complete ? '' : ', more next run'}`,
        )
        for (const failure of result.failed) log(`consents: reminder for ${String(failure.address)}: ${failure.error}`)
        return result
      })
      .finally(() => {
        running = undefined
      })
    return running
  }

  function schedule(delayMs: number): void {
    timer = setTimeout(() => {
      runOnce()
        .catch((error: Error) => log(`consents: reminder run failed: ${error.message}`))
        .finally(() => {
          if (timer) schedule(config.advertising.reminderIntervalMs)
        })
    }, delayMs)
    timer.unref()
  }

  return {
    runOnce,
    start() {
      if (timer) return
      schedule(Math.min(FIRST_RUN_DELAY_MS, config.advertising.reminderIntervalMs))
    },
    async stop() {
      clearTimeout(timer)
      timer = undefined
      if (!running) return
      let wait: NodeJS.Timeout | undefined
      await Promise.race([
        running.catch(() => {}),
        new Promise<void>((resolve) => {
          wait = setTimeout(() => {
            log(`consents: stopping without waiting longer for the reminder run (${STOP_WAIT_MS} ms)`)
            resolve()
          }, STOP_WAIT_MS)
        }),
      ])
      clearTimeout(wait)
    },
  }
}
