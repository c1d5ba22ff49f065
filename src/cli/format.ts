/** Plain-text tables for the terminal: a header row, columns padded to their widest cell. */
export function table(headers: string[], rows: (string | number | undefined | null)[][]): string {
  const cells = rows.map((row) => headers.map((_, column) => clean(row[column])))
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...cells.map((row) => row[column]?.length ?? 0)),
  )
  const line = (row: string[]) =>
    row
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd()
  return [line(headers), line(widths.map((width) => '-'.repeat(width))), ...cells.map(line)].join('\n')
}

/** `key  value` lines, keys aligned. */
export function pairs(entries: [string, string | number | undefined | null][]): string {
  const width = Math.max(...entries.map(([key]) => key.length))
  return entries.map(([key, value]) => `${key.padEnd(width)}  ${clean(value)}`).join('\n')
}

/** One line, no control characters: values come from Redis and may hold anything. */
function clean(value: string | number | undefined | null): string {
  if (value === undefined || value === null || value === '') return '-'
  return String(value).replace(/[\u0000-\u001f\u007f]+/g, ' ')
}

export function formatTime(epochMs: number | undefined): string {
  return epochMs ? new Date(epochMs).toISOString() : '-'
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min`
  return `${(ms / 3_600_000).toFixed(1)} h`
}
