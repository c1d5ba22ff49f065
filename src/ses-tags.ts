// The SES tag codec: job and batch ids into SES's tag alphabet and back (the SES transport and
// the SES webhook handler use it; users who read SES events themselves import it from mailstream/ses).

/**
 * SES message tags allow only `A-Z a-z 0-9 _ -` in names and values, while job and batch ids
 * may also contain `.` and `:`. Tag values are escaped reversibly with `_` as the escape
 * character: `_` -> `__`, `.` -> `_d`, `:` -> `_c`, anything else -> `_x` and 4 hex digits.
 * A 128-character id stays within SES's 256-character limit. `decodeTagValue` undoes it.
 */
export function encodeTagValue(value: string): string {
  return value.replace(/[^A-Za-z0-9-]/g, (char) => {
    if (char === '_') return '__'
    if (char === '.') return '_d'
    if (char === ':') return '_c'
    return `_x${char.charCodeAt(0).toString(16).padStart(4, '0')}`
  })
}

/** The value `encodeTagValue` was given (for reading `job_id` and `batch_id` back from SES events). */
export function decodeTagValue(tag: string): string {
  return tag.replace(/_(?:x([0-9a-f]{4})|([_dc]))/g, (_match, hex: string | undefined, escaped: string | undefined) => {
    if (hex !== undefined) return String.fromCharCode(Number.parseInt(hex, 16))
    return escaped === '_' ? '_' : escaped === 'd' ? '.' : ':'
  })
}
