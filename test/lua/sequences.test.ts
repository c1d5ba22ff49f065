import { describe, expect, test } from 'vitest'
import { sequenceKeys } from '../../src/keys.js'
import { uniquePrefix } from '../helpers/redis.js'
import { createScriptTestbed } from './helpers.js'

const { redis, run } = createScriptTestbed()

/** An enrolment at step `a`, active, run 1; and the keys around it. */
async function enrolled() {
  const keys = sequenceKeys(uniquePrefix('lua-seq'))
  const key = keys.enrolment('s', '0123456789abcdef')
  const stats = keys.stats('s')
  await run('sequenceEnroll', [key, keys.due, stats], [1000, '0', 'a', 'address', 'r@example.com'])
  const move = (args: (string | number)[]) => run<number>('sequenceMove', [key, keys.due, stats], args)
  return { keys, key, stats, move }
}

describe('lua/sequence-enroll', () => {
  test('starts an enrolment once, due at once; starts again only with restart once it is over', async () => {
    const { keys, key, stats, move } = await enrolled()
    expect(await redis.hgetall(key)).toMatchObject({ status: 'active', step: 'a', run: '1', address: 'r@example.com' })
    expect(await redis.zscore(keys.due, key)).toBe('1000')
    expect(await run('sequenceEnroll', [key, keys.due, stats], [2000, '1', 'a'])).toEqual([0, 'active'])
    await move(['', '', ',active,', '-', 'done', 0, 3000, '', ''])
    expect(await run('sequenceEnroll', [key, keys.due, stats], [4000, '0', 'a'])).toEqual([0, 'done'])
    expect(await run('sequenceEnroll', [key, keys.due, stats], [4000, '1', 'a', 'address', 'r@example.com'])).toEqual([
      1,
      'active',
    ])
    expect(await redis.hgetall(key)).toMatchObject({ run: '2', status: 'active', step: 'a', enrolledAt: '4000' })
    expect(await redis.hgetall(stats)).toMatchObject({
      enrolled: '2',
      'status:active': '1',
      'status:done': '0',
      'at:a': '1',
    })
  })
})

describe('lua/sequence-claim', () => {
  test('takes due enrolments under a lease, so that no other runner takes them before it ends', async () => {
    const { keys, key } = await enrolled()
    expect(await run('sequenceClaim', [keys.due], [999, 5000, 10])).toEqual([])
    expect(await run('sequenceClaim', [keys.due], [1000, 5000, 10])).toEqual([key])
    expect(await redis.zscore(keys.due, key)).toBe('5000')
    expect(await run('sequenceClaim', [keys.due], [4999, 9000, 10])).toEqual([])
    expect(await run('sequenceClaim', [keys.due], [5000, 9000, 10])).toEqual([key])
  })
})

describe('lua/sequence-move', () => {
  test('moves only from the step, run and status the caller saw', async () => {
    const { keys, key, move } = await enrolled()
    expect(await move(['2', 'a', ',active,', 'b', 'active', 7000, 1500, '', ''])).toBe(0)
    expect(await move(['1', 'z', ',active,', 'b', 'active', 7000, 1500, '', ''])).toBe(0)
    expect(await move(['1', 'a', ',waiting,', 'b', 'active', 7000, 1500, '', ''])).toBe(0)
    expect(await redis.hget(key, 'step')).toBe('a')
    expect(await move(['1', 'a', ',active,', 'b', 'active', 7000, 1500, 'a', '', 'lastJob', 'j1'])).toBe(1)
    expect(await redis.hgetall(key)).toMatchObject({ step: 'b', nextAt: '7000', lastJob: 'j1', updatedAt: '1500' })
    expect(await redis.zscore(keys.due, key)).toBe('7000')
    // The same move again (a second runner): refused, nothing counted twice.
    expect(await move(['1', 'a', ',active,', 'b', 'active', 7000, 1500, 'a', ''])).toBe(0)
  })

  test('keeps the counters per step and status, and leaves the due set when over', async () => {
    const { keys, key, stats, move } = await enrolled()
    await move(['1', 'a', ',active,', 'b', 'active', 2000, 1500, 'a', ''])
    await move(['1', 'b', ',active,', '', 'waiting', 9000, 2000, '', '', 'waitingFor', 'confirmed'])
    expect(await redis.hgetall(stats)).toMatchObject({ 'at:a': '0', 'at:b': '1', 'status:waiting': '1', 'sent:a': '1' })
    expect(await redis.hget(key, 'waitingFor')).toBe('confirmed')
    expect(await move(['1', '', ',active,waiting,', '', 'exited', 0, 3000, '', 'goal:paid'])).toBe(1)
    expect(await redis.hgetall(key)).toMatchObject({ status: 'exited', exitReason: 'goal:paid', finishedAt: '3000' })
    expect(await redis.hexists(key, 'nextAt')).toBe(0)
    expect(await redis.hexists(key, 'waitingFor')).toBe(0)
    expect(await redis.zscore(keys.due, key)).toBeNull()
    expect(await redis.hgetall(stats)).toMatchObject({
      'at:b': '0',
      'status:waiting': '0',
      'status:exited': '1',
      'exited:goal:paid': '1',
    })
    // Over: no move takes it anywhere.
    expect(await move(['', '', ',active,waiting,', 'c', 'active', 1, 4000, '', ''])).toBe(0)
  })

  test('an enrolment that is gone is not created', async () => {
    const keys = sequenceKeys(uniquePrefix('lua-seq'))
    const key = keys.enrolment('s', 'ffffffffffffffff')
    expect(
      await run('sequenceMove', [key, keys.due, keys.stats('s')], ['', '', ',active,', 'b', 'active', 1, 1, '', '']),
    ).toBe(0)
    expect(await redis.exists(key)).toBe(0)
  })
})
