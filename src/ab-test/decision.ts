// The winner of an A/B test from its counters: pure, so that the queue, the worker and tests agree.

export type AbMetric = 'clicks' | 'opens'

/** What one variant has counted so far (unique per message: a reader opening twice is one open). */
export interface VariantCounts {
  sent: number
  /** Opens by people (machine opens are not counted, see docs/newsletters.md). */
  opened: number
  clicked: number
}

/**
 * Why a variant won. `best-rate`: it had the highest rate of the metric among the variants with
 * enough sends. `tie`: several had that rate, the first of them won. `min-sample`: no variant had
 * `minSample` sends, the first variant won.
 */
export type AbDecisionReason = 'best-rate' | 'tie' | 'min-sample'

export interface AbDecisionNumbers {
  metric: AbMetric
  minSample: number
  /** Per variant, in order: its counts, the rate of the metric (0-1) and whether it had enough sends. */
  variants: (VariantCounts & { rate: number; eligible: boolean })[]
}

export interface AbDecision {
  winner: number
  reason: AbDecisionReason
  /** Epoch ms. */
  at: number
  numbers: AbDecisionNumbers
}

/** opened / sent or clicked / sent, 0 when nothing was sent. */
export function rateOf(counts: VariantCounts, metric: AbMetric): number {
  if (counts.sent <= 0) return 0
  return (metric === 'clicks' ? counts.clicked : counts.opened) / counts.sent
}

/**
 * Decides a test: among the variants with at least `minSample` sends, the highest rate of
 * `metric` wins (the lower index on a tie); with none, variant 0 wins with reason `min-sample`.
 */
export function decideAbTest(
  counts: readonly VariantCounts[],
  metric: AbMetric,
  minSample: number,
  at: number,
): AbDecision {
  const variants = counts.map((count) => ({
    sent: count.sent,
    opened: count.opened,
    clicked: count.clicked,
    rate: rateOf(count, metric),
    eligible: count.sent >= minSample,
  }))
  const numbers: AbDecisionNumbers = { metric, minSample, variants }
  let winner = -1
  let tied = false
  variants.forEach((variant, index) => {
    if (!variant.eligible) return
    const best = variants[winner]
    if (best === undefined || variant.rate > best.rate) {
      winner = index
      tied = false
    } else if (variant.rate === best.rate) tied = true
  })
  if (winner < 0) return { winner: 0, reason: 'min-sample', at, numbers }
  return { winner, reason: tied ? 'tie' : 'best-rate', at, numbers }
}
