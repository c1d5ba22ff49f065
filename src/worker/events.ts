import { describeError, MailstreamError } from '../errors.js'
import type { EmailJob } from '../job.js'
import type { Processed, WorkerEventName, WorkerEvents } from './types.js'

/** Anything a listener or a Redis call threw, as the `error` event carries it. */
export function toMailstreamError(error: unknown, what: string): MailstreamError {
  if (error instanceof MailstreamError) return error
  return new MailstreamError('E_REDIS', `${what}: ${describeError(error)}`, { cause: error })
}

type Listener = (payload: never) => void

/** Typed listeners; `on` returns an unsubscribe function, and a listener's throw becomes an `error` event. */
export function createEvents() {
  const listeners = new Map<WorkerEventName, Set<Listener>>()

  function emit<E extends WorkerEventName>(event: E, payload: WorkerEvents[E]): void {
    const set = listeners.get(event)
    if (!set) return
    for (const listener of [...set]) {
      try {
        ;(listener as (payload: WorkerEvents[E]) => void)(payload)
      } catch (error) {
        if (event !== 'error') emit('error', toMailstreamError(error, `a '${event}' listener threw`))
      }
    }
  }

  function on<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): () => void {
    let set = listeners.get(event)
    if (!set) {
      set = new Set()
      listeners.set(event, set)
    }
    set.add(listener as Listener)
    return () => {
      set.delete(listener as Listener)
    }
  }

  return { emit, on }
}

export type Events = ReturnType<typeof createEvents>

type Emitted = { [E in WorkerEventName]: [E, WorkerEvents[E]] }[WorkerEventName]

/**
 * The events a processed job gives once its outcome is written: `failed` for a failed try, then
 * what the outcome was (nothing more when another delivery of the job was recorded first).
 */
export function toEvents({ work, job, attempts, outcome, failure }: Processed, applied: boolean): Emitted[] {
  const id = work.delivery.jobId
  const out: Emitted[] = []
  if (failure) {
    out.push(['failed', { id, job, attempts, ...failure, final: applied && outcome.kind === 'dead' }])
  }
  if (!applied) return out
  switch (outcome.kind) {
    case 'sent':
      out.push([
        'sent',
        {
          id,
          job: job as EmailJob,
          messageId: outcome.messageId,
          ...(outcome.rejected && { rejected: outcome.rejected }),
          attempts,
        },
      ])
      break
    case 'retry':
    case 'throttle':
      out.push([
        'retrying',
        {
          id,
          job: job as EmailJob,
          attempts,
          error: outcome.error,
          retryAt: outcome.dueAt,
          throttled: outcome.kind === 'throttle',
        },
      ])
      break
    case 'dead':
      out.push(['dead', { id, job, attempts, error: outcome.error }])
      break
    case 'suppressed':
      out.push(['suppressed', { id, job: job as EmailJob, addresses: work.suppressed }])
      break
  }
  return out
}
