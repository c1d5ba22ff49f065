import { ADVERTISING_SENT, EVENT_TOTALS, type QueueStats, WORKER_TOTALS } from './queue/stats.js'

/**
 * Histograms the workers record into `P:metrics` (a hash of integer counters), shared by every
 * worker on the prefix: per bucket `<name>:<upper bound in ms>` (not cumulative), plus
 * `<name>:count` and `<name>:sum_ms`.
 */
export const HISTOGRAMS = {
  /** How long the transport took to send (or fail) one message. */
  send_duration: {
    help: 'Time the transport took for one send, in seconds.',
    bucketsMs: [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000],
  },
  /** From enqueue to sent: what a user waiting for a verification code feels. */
  delivery_latency: {
    help: 'Time from enqueue to sent, in seconds.',
    bucketsMs: [100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000, 900_000, 3_600_000],
  },
  /** Time a send waited for rate-limit units (only sends that had to wait). */
  rate_limit_wait: {
    help: 'Time a send waited for the rate limiter, in seconds (sends that waited).',
    bucketsMs: [10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000],
  },
} as const
export type HistogramName = keyof typeof HISTOGRAMS

/** The `P:metrics` counter of advertising messages sent (defined with the stats, which read it too). */
export { ADVERTISING_SENT }

/** The `P:metrics` counters of per-provider pacing: jobs parked, and slow-downs, per provider. */
export const providerParked = (provider: string): string => `provider_parked:${provider}`
export const providerSlowDowns = (provider: string): string => `provider_slowdown:${provider}`

/** Accumulates observations in memory; the worker writes them with each batch of outcomes. */
export function createMetricsRecorder() {
  const names = Object.keys(HISTOGRAMS) as HistogramName[]
  // Per histogram, the `P:metrics` field of each slot: one per bucket, +Inf, the count, the sum in ms.
  const fields = new Map(
    names.map((name) => [
      name,
      [...HISTOGRAMS[name].bucketsMs, 'inf', 'count', 'sum_ms'].map((field) => `${name}:${field}`),
    ]),
  )
  const fresh = () => new Map(names.map((name) => [name, new Array<number>(fields.get(name)?.length ?? 0).fill(0)]))
  let counts = fresh()
  /** Plain counters (`advertising:sent`), by `P:metrics` field. */
  let counters = new Map<string, number>()
  let observed = false
  return {
    /** Adds `by` to a plain counter of `P:metrics`. */
    count(field: string, by = 1): void {
      counters.set(field, (counters.get(field) ?? 0) + by)
      observed = true
    },
    observe(name: HistogramName, ms: number): void {
      const value = Math.max(0, Math.round(ms))
      const bounds = HISTOGRAMS[name].bucketsMs
      const row = counts.get(name) as number[]
      let bucket = 0
      while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket++
      row[bucket] = (row[bucket] as number) + 1
      row[bounds.length + 1] = (row[bounds.length + 1] as number) + 1
      row[bounds.length + 2] = (row[bounds.length + 2] as number) + value
      observed = true
    },
    /** The increments since the last call, by `P:metrics` field; empty when nothing was observed. */
    take(): Map<string, number> {
      const increments = new Map<string, number>()
      if (!observed) return increments
      for (const [name, row] of counts) {
        const slots = fields.get(name) as string[]
        row.forEach((by, index) => {
          if (by > 0) increments.set(slots[index] as string, by)
        })
      }
      for (const [field, by] of counters) increments.set(field, by)
      counts = fresh()
      counters = new Map()
      observed = false
      return increments
    },
  }
}

function line(name: string, value: number, labels: Record<string, string> = {}): string {
  // Escaped as the exposition format wants: backslash, double quote, and a line feed as `\n`.
  const escaped = (label: string) => label.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))
  const pairs = Object.entries(labels).map(([key, label]) => `${key}="${escaped(label)}"`)
  return `${name}${pairs.length ? `{${pairs.join(',')}}` : ''} ${Number.isFinite(value) ? value : 0}`
}

function family(name: string, type: 'gauge' | 'counter' | 'histogram', help: string, lines: string[]): string {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines].join('\n')
}

/** Per provider, the counter of `recorded` under `<prefix><provider>`, providers in name order. */
function perProvider(recorded: Record<string, string>, prefix: string): [provider: string, value: number][] {
  return Object.keys(recorded)
    .filter((field) => field.startsWith(prefix) && field.length > prefix.length)
    .sort()
    .map((field) => [field.slice(prefix.length), Number(recorded[field])])
}

/** Prometheus text exposition (version 0.0.4) of a queue's stats and its workers' histograms. */
export function renderMetrics(stats: QueueStats, recorded: Record<string, string>): string {
  const priorities = Object.entries(stats.streams)
  const totals = stats.totals as unknown as Record<string, number>
  const counter = (field: string) => Number(recorded[field] ?? 0)
  const families = [
    family(
      'mailstream_queue_waiting',
      'gauge',
      'Jobs waiting in a send stream, not yet delivered to a worker.',
      priorities.map(([priority, stream]) => line('mailstream_queue_waiting', stream.waiting, { priority })),
    ),
    family(
      'mailstream_queue_pending',
      'gauge',
      'Jobs delivered to a worker and not yet acknowledged.',
      priorities.map(([priority, stream]) => line('mailstream_queue_pending', stream.pending, { priority })),
    ),
    family(
      'mailstream_queue_oldest_waiting_seconds',
      'gauge',
      'Age of the oldest waiting job.',
      priorities.map(([priority, stream]) =>
        line('mailstream_queue_oldest_waiting_seconds', stream.oldestWaitingMs / 1000, { priority }),
      ),
    ),
    family(
      'mailstream_queue_consumers',
      'gauge',
      'Live workers of a send stream: connected, or holding entries.',
      priorities.map(([priority, stream]) => line('mailstream_queue_consumers', stream.consumers, { priority })),
    ),
    family('mailstream_delayed', 'gauge', 'Jobs scheduled for later (delays, retries, throttles).', [
      line('mailstream_delayed', stats.delayed),
    ]),
    family('mailstream_dead', 'gauge', 'Jobs in the dead letters.', [line('mailstream_dead', stats.dead)]),
    family('mailstream_suppressed_addresses', 'gauge', 'Addresses on the suppression list.', [
      line('mailstream_suppressed_addresses', stats.suppressed),
    ]),
    family(
      'mailstream_jobs_total',
      'counter',
      'Job outcomes recorded by the workers.',
      WORKER_TOTALS.map((outcome) => line('mailstream_jobs_total', totals[outcome] ?? 0, { outcome })),
    ),
    family(
      'mailstream_ses_events_total',
      'counter',
      'Messages with at least one SES event of this type (from the webhook handler).',
      EVENT_TOTALS.map((event) => line('mailstream_ses_events_total', totals[event] ?? 0, { event })),
    ),
    family(
      'mailstream_advertising_sent_total',
      'counter',
      'Advertising messages sent (the Korean advertising profile): part of the sent jobs.',
      [line('mailstream_advertising_sent_total', counter(ADVERTISING_SENT))],
    ),
    family(
      'mailstream_provider_parked_total',
      'counter',
      'Jobs parked until their mailbox provider had room (per-provider pacing).',
      perProvider(recorded, providerParked('')).map(([provider, value]) =>
        line('mailstream_provider_parked_total', value, { provider }),
      ),
    ),
    family(
      'mailstream_provider_slowdowns_total',
      'counter',
      "Times a mailbox provider's rate was lowered (its rate replies, SES delivery delays).",
      perProvider(recorded, providerSlowDowns('')).map(([provider, value]) =>
        line('mailstream_provider_slowdowns_total', value, { provider }),
      ),
    ),
    ...(Object.entries(HISTOGRAMS) as [HistogramName, (typeof HISTOGRAMS)[HistogramName]][]).map(
      ([name, histogram]) => {
        const metric = `mailstream_${name}_seconds`
        let cumulative = 0
        const buckets = histogram.bucketsMs.map((bound) => {
          cumulative += counter(`${name}:${bound}`)
          return line(`${metric}_bucket`, cumulative, { le: String(bound / 1000) })
        })
        cumulative += counter(`${name}:inf`)
        return family(metric, 'histogram', histogram.help, [
          ...buckets,
          line(`${metric}_bucket`, cumulative, { le: '+Inf' }),
          line(`${metric}_sum`, counter(`${name}:sum_ms`) / 1000),
          line(`${metric}_count`, counter(`${name}:count`)),
        ])
      },
    ),
  ]
  return `${families.join('\n')}\n`
}
