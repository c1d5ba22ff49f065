import type { SequenceKeys } from '../keys.js'
import type { RedisClient } from '../redis.js'
import { runScript } from './index.js'

export type EnrolmentStatus = 'active' | 'waiting' | 'done' | 'exited'

export interface EnrolCall {
  /** The enrolment's key and its sequence's stats key. */
  key: string
  statsKey: string
  now: number
  /** Start again an enrolment that is over. */
  restart: boolean
  firstStep: string
  fields: Record<string, string>
}

/** `lua/sequence-enroll.lua`: resolves whether it started the enrolment, and the status it has. */
export async function enrolSequence(
  client: RedisClient,
  keys: SequenceKeys,
  call: EnrolCall,
): Promise<{ created: boolean; status: EnrolmentStatus }> {
  const args: (string | number)[] = [call.now, call.restart ? '1' : '0', call.firstStep]
  for (const [field, value] of Object.entries(call.fields)) args.push(field, value)
  const [created, status] = await runScript<[number, string]>(
    client,
    'sequenceEnroll',
    [call.key, keys.due, call.statsKey],
    args,
  )
  return { created: Number(created) === 1, status: status as EnrolmentStatus }
}

/** `lua/sequence-claim.lua`: the keys of up to `count` due enrolments, each leased until `leaseUntil`. */
export async function claimSequences(
  client: RedisClient,
  keys: SequenceKeys,
  { now, leaseUntil, count }: { now: number; leaseUntil: number; count: number },
): Promise<string[]> {
  return (await runScript<string[]>(client, 'sequenceClaim', [keys.due], [now, leaseUntil, count])).map(String)
}

export interface MoveCall {
  key: string
  statsKey: string
  /** What the enrolment must still be: its run ('' any), its step ('' any, '-' the end) and one of these statuses. */
  expect: { run: string; step: string; statuses: readonly EnrolmentStatus[] }
  /** The new step ('' keeps it, '-' the end). */
  step: string
  status: EnrolmentStatus
  /** Next due time, epoch ms (not for done and exited). */
  nextAt: number
  now: number
  /** The step whose email this move records as sent. */
  sentStep?: string
  exitReason?: string
  fields?: Record<string, string>
}

/** `lua/sequence-move.lua`: resolves false when the enrolment was not as expected (nothing written). */
export async function moveSequence(client: RedisClient, keys: SequenceKeys, call: MoveCall): Promise<boolean> {
  const args: (string | number)[] = [
    call.expect.run,
    call.expect.step,
    `,${call.expect.statuses.join(',')},`,
    call.step,
    call.status,
    call.nextAt,
    call.now,
    call.sentStep ?? '',
    call.exitReason ?? '',
  ]
  for (const [field, value] of Object.entries(call.fields ?? {})) args.push(field, value)
  return (await runScript<number>(client, 'sequenceMove', [call.key, keys.due, call.statsKey], args)) === 1
}
