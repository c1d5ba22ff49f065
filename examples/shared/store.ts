/**
 * Where the service keeps its subscribers and issues. The Express example implements it on
 * PostgreSQL, the Hono example on Redis; the routes only see this interface.
 */

import type { EmailJobInput } from 'mailstream'

export type SubscriberStatus = 'pending' | 'active' | 'unsubscribed'

export interface Subscriber {
  /** Trimmed and lower-case: the key. */
  email: string
  name?: string
  locale?: string
  status: SubscriberStatus
  /** Epoch ms. */
  createdAt: number
  confirmedAt?: number
  unsubscribedAt?: number
}

export interface Issue {
  id: string
  title: string
  /** Markdown. */
  body: string
  /** Epoch ms of the first publish. */
  publishedAt: number
}

/** The email a change causes, built from the subscriber as stored after it; none when nothing is to be sent. */
export type EmailFor = (subscriber: Subscriber) => EmailJobInput | undefined

export interface SubscriberStore {
  /**
   * True when the store enqueues the email of a change in the change's own transaction (the
   * Express example, through mailstream/pg's outbox): the email goes if and only if the change
   * commits. False or absent: the routes enqueue it after the change.
   */
  readonly outbox?: boolean
  get(email: string): Promise<Subscriber | null>
  /**
   * A new sign-up, or a repeated one: creates the subscriber as `pending`, or sets an existing
   * pending or unsubscribed one back to `pending` with the new name and locale. An active
   * subscriber is left as it is. Resolves the subscriber as stored afterwards.
   */
  requestSubscription(input: { email: string; name?: string; locale?: string }, email?: EmailFor): Promise<Subscriber>
  /** `pending` -> `active`, atomically. Resolves true only for the call that changed it. */
  activate(email: string, welcome?: EmailFor): Promise<boolean>
  /** Any status -> `unsubscribed`. Resolves true when that changed the status (false: unknown, or already). */
  unsubscribe(email: string): Promise<boolean>
  /** Active subscribers, read in pages of `pageSize` (ordered by email, so a page boundary never repeats one). */
  activeSubscribers(pageSize?: number): AsyncIterable<Subscriber>
  /** Records an issue the first time it is published; later calls keep the first title and body. */
  saveIssue(issue: Issue): Promise<Issue>
  getIssue(id: string): Promise<Issue | null>
  /** The issues published last, newest first. */
  recentIssues(limit: number): Promise<Issue[]>
  /** Throws when the store cannot be reached (for /healthz). */
  ping(): Promise<void>
}
