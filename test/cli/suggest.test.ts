import { describe, expect, test } from 'vitest'
import { closest, editDistance } from '../../src/cli/suggest.js'

describe('editDistance', () => {
  test('counts insertions, deletions, substitutions and neighbour swaps as one edit each', () => {
    expect(editDistance('stats', 'stats')).toBe(0)
    expect(editDistance('stat', 'stats')).toBe(1)
    expect(editDistance('stauts', 'status')).toBe(1)
    expect(editDistance('cuont', 'count')).toBe(1)
    expect(editDistance('purg', 'purge')).toBe(1)
    expect(editDistance('supression', 'suppression')).toBe(1)
    expect(editDistance('kitten', 'sitting')).toBe(3)
    expect(editDistance('', 'abc')).toBe(3)
  })
})

describe('closest', () => {
  const commands = ['stats', 'status', 'pending', 'dead', 'batch', 'suppression', 'worker']
  test('suggests the nearest name within two edits, ignoring case', () => {
    expect(closest('stat', commands)).toBe('stats')
    expect(closest('stauts', commands)).toBe('status')
    expect(closest('Dead', commands)).toBe('dead')
    expect(closest('wroker', commands)).toBe('worker')
    expect(closest('pendng', commands)).toBe('pending')
  })

  test('suggests nothing for what is not close', () => {
    expect(closest('frobnicate', commands)).toBeUndefined()
    expect(closest('x', ['all', 'json'])).toBeUndefined()
    expect(closest('sent', commands)).toBeUndefined()
  })
})
