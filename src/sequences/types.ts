// The public shapes of sequences: options, contacts, enrolments, stats.
import type { WeeklyHours } from '../calendar.js'
import type { MailstreamError } from '../errors.js'
import type { EnrolmentStatus } from '../lua/sequences.js'
import type { EmailQueue } from '../queue/index.js'
import type { SequenceDefinition } from './steps.js'

export type { EnrolmentStatus }

export interface SequencesOptions {
  /** The queue the emails go through (made by `createEmailQueue`); the state lives under its prefix, on its client. */
  queue: EmailQueue
  /** The definitions (`defineSequence`), with distinct ids. */
  sequences: readonly SequenceDefinition[]
  /**
   * When delays may end: a delay that ends outside these weekly hours is held to their next
   * opening. The contact's `timeZone` (given to `enroll`) replaces the calendar's. Default: none.
   */
  calendar?: WeeklyHours
  /**
   * How long a runner holds an enrolment it took (1 s to 1 h): one that dies meanwhile leaves it to
   * another runner after this. Default 60000.
   */
  leaseMs?: number
  /** How often `start()` looks for due steps, in ms (10 to 3 600 000). Default 1000. */
  intervalMs?: number
  /** Most enrolments one `runOnce` takes (1-1000). Default 100. */
  batchSize?: number
  /** The clock, epoch ms (tests give a fake one). Default `Date.now`. */
  now?: () => number
  /** Longest wait for each Redis reply, in ms (10 to 600 000). Default 5000. */
  commandTimeoutMs?: number
  /**
   * Called with the errors of the runner started by `start()` (each, then a backoff) and of an
   * enrolment ended as `invalid` (its email was refused at enqueue). Default: none.
   */
  onError?: (error: MailstreamError) => void
}

export interface Contact {
  address: string
  name?: string
  /** The emails' locale (`ko`, `en`). */
  locale?: string
  /** IANA time zone: the sending calendar is read in it. */
  timeZone?: string
}

export interface EnrollOptions {
  /** Start again an enrolment that is over (done or exited); an active one is never restarted. Default false. */
  restart?: boolean
}

export interface EnrollResult {
  /** False when the address was enrolled already (nothing was written). */
  created: boolean
  status: EnrolmentStatus
}

export interface Enrolment {
  sequenceId: string
  address: string
  name?: string
  locale?: string
  timeZone?: string
  data: Record<string, unknown>
  status: EnrolmentStatus
  /** The id of the next step ('' past the end). */
  step: string
  /** The version of the definition its last step ran under; `startedVersion` the one it began on. */
  version: number
  startedVersion: number
  /** How many times it began (`restart`). */
  run: number
  enrolledAt: number
  updatedAt: number
  /** When it is next due, epoch ms (active and waiting only). */
  nextAt?: number
  waitingFor?: string
  exitReason?: string
  finishedAt?: number
  /** The id of the last email it enqueued. */
  lastJob?: string
  /** Why the last email was refused, for an enrolment ended as `invalid`. */
  error?: string
  events: Record<string, number>
}

export interface SequenceStepStats {
  id: string
  kind: 'send' | 'delay' | 'waitFor' | 'branch'
  /** Enrolments (active or waiting) whose next step this is. */
  at: number
  /** Enrolments that moved past this step with its email enqueued (once each, crashes included). */
  sent: number
}

export interface SequenceStats {
  enrolled: number
  active: number
  waiting: number
  done: number
  exited: number
  /** Exits by reason: manual (or the reason given to `exit`), suppressed, goal:<event>, timeout, invalid. */
  exitReasons: Record<string, number>
  steps: SequenceStepStats[]
}

export interface RunResult {
  /** Enrolments taken. */
  claimed: number
  /** Steps whose email was enqueued and the enrolment moved past (a job an earlier, crashed run wrote counts here). */
  sent: number
  done: number
  exited: number
}

export interface Sequences {
  /** Enrols `contact` in a sequence, once per (sequence, address): the first step is due at once. */
  enroll(
    sequenceId: string,
    contact: Contact | string,
    data?: Record<string, unknown>,
    options?: EnrollOptions,
  ): Promise<EnrollResult>
  /** Ends an enrolment; its last email is cancelled if not sent yet. Resolves false when there was none running. */
  exit(sequenceId: string, address: string, reason?: string): Promise<boolean>
  /**
   * Tells the sequences an event of an address: a goal event ends its enrolments; others resume
   * those waiting for it and are remembered for later `waitFor` steps and branches.
   */
  signal(address: string, event: string): Promise<{ resumed: number; exited: number }>
  get(sequenceId: string, address: string): Promise<Enrolment | null>
  stats(sequenceId: string): Promise<SequenceStats>
  /** Runs the steps that are due (at most `batchSize` enrolments). */
  runOnce(options?: { now?: number }): Promise<RunResult>
  /** Runs `runOnce` every `intervalMs` (sooner while there is more), errors to `onError` with backoff. */
  start(): void
  /** Stops the loop of `start()`; resolves once a run under way has ended. */
  stop(): Promise<void>
}
