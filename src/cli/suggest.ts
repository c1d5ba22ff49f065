/**
 * Edits that turn `a` into `b`: insertions, deletions, substitutions and swaps of two
 * neighbouring characters (so `stauts` is one edit from `status`, as a typist would count it).
 */
export function editDistance(a: string, b: string): number {
  // Three rows of the optimal-string-alignment table are all a swap looks back at.
  let before: number[] = []
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      )
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, (before[j - 2] as number) + 1)
      }
      current.push(best)
    }
    before = previous
    previous = current
  }
  return previous[b.length] as number
}

/** The candidate closest to `input` within `maxEdits` edits (ignoring case), or undefined. */
export function closest(input: string, candidates: Iterable<string>, maxEdits = 2): string | undefined {
  let best: string | undefined
  let bestDistance = maxEdits + 1
  const typed = input.toLowerCase()
  const lengthGap = (candidate: string) => Math.abs(candidate.length - typed.length)
  for (const candidate of candidates) {
    const distance = editDistance(typed, candidate.toLowerCase())
    // A one-letter input is within two edits of every short name: only suggest what shares more.
    if (distance >= Math.max(typed.length, 2)) continue
    // Between equally close names, the one of the typed length: `stauts` is `status`, not `stats`.
    const tie = distance === bestDistance && best !== undefined
    if (distance < bestDistance || (tie && lengthGap(candidate) < lengthGap(best as string))) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}
