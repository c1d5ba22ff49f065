import { describeError, MailstreamError } from '../errors.js'
import type { EmailJob } from '../job.js'
import type { Processed, WorkerEventName, WorkerEvents } from './types.js'

/** Anything a listener or a Redis call threw, as the `error` event carries it. */
export function toMailstreamError(error: unknown, what: string): MailstreamError {
  if (error instanceof MailstreamError) return error
  return new MailstreamError('E_REDIS', `${what}: ${describeError(error)}`, { cause: error })
}

type Listener = (payload: never) => void

/** A `once` listener remembers the function it wraps, so that `off(event, fn)` finds it. */
const WRAPPED: unique symbol = Symbol('wrapped')
type Registered = Listener & { [WRAPPED]?: Listener }

/**
 * Typed listeners; `on` and `once` return an unsubscribe function, `off` removes a function added
 * with either, and a listener's throw becomes an `error` event.
 */
export function createEvents() {
  const listeners = new Map<WorkerEventName, Set<Registered>>()

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

  function add(event: WorkerEventName, listener: Registered): () => void {
    let set = listeners.get(event)
    if (!set) {
      set = new Set()
      listeners.set(event, set)
    }
    set.add(listener)
    const current = set
    return () => {
      current.delete(listener)
    }
  }

  function on<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): () => void {
    return add(event, listener as Listener)
  }

  function once<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): () => void {
    const wrapped: Registered = ((payload: WorkerEvents[E]) => {
      remove()
      listener(payload)
    }) as Listener
    wrapped[WRAPPED] = listener as Listener
    const remove = add(event, wrapped)
    return remove
  }

  /** Removes `listener` (added with `on` or `once`) from `event`; once if it was added more than once. */
  function off<E extends WorkerEventName>(event: E, listener: (payload: WorkerEvents[E]) => void): void {
    const set = listeners.get(event)
    if (!set) return
    for (const registered of set) {
      if (registered === listener || registered[WRAPPED] === listener) {
        set.delete(registered)
        return
      }
    }
  }

  return { emit, on, once, off }
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
