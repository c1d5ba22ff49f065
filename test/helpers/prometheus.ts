export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Exposition {
  types: Map<string, string>
  samples: Sample[]
  /** The value of one sample; throws when it is missing. */
  value(name: string, labels?: Record<string, string>): number
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*'
const SAMPLE_RE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`)
const LABEL_RE = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y

/**
 * A strict reader of the Prometheus text format (0.0.4): every line must be a HELP or TYPE
 * comment or a sample, every sample must belong to a family declared by TYPE, label values must
 * be well escaped, and values must be numbers. Throws on the first violation.
 */
export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline')
  const types = new Map<string, string>()
  const samples: Sample[] = []
  for (const [index, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${index + 1}: ${line}`
    if (line.startsWith('# HELP ')) {
      if (!new RegExp(`^# HELP ${NAME} .+$`).test(line)) throw new Error(`bad HELP, ${where}`)
      continue
    }
    if (line.startsWith('# TYPE ')) {
      const match = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line)
      if (!match) throw new Error(`bad TYPE, ${where}`)
      if (types.has(match[1] as string)) throw new Error(`TYPE repeated, ${where}`)
      types.set(match[1] as string, match[2] as string)
      continue
    }
    const match = SAMPLE_RE.exec(line)
    if (!match) throw new Error(`not a sample, ${where}`)
    const [, name, rawLabels = '', rawValue] = match as unknown as [string, string, string | undefined, string]
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    if (!types.has(family)) throw new Error(`sample without TYPE, ${where}`)
    const labels: Record<string, string> = {}
    LABEL_RE.lastIndex = 0
    while (LABEL_RE.lastIndex < rawLabels.length) {
      const label = LABEL_RE.exec(rawLabels)
      if (!label) throw new Error(`bad labels, ${where}`)
      labels[label[1] as string] = (label[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    }
    const value = rawValue === '+Inf' ? Number.POSITIVE_INFINITY : Number(rawValue)
    if (Number.isNaN(value) && rawValue !== 'NaN') throw new Error(`bad value, ${where}`)
    samples.push({ name, labels, value })
  }
  return {
    types,
    samples,
    value(name, labels = {}) {
      const found = samples.find(
        (sample) =>
          sample.name === name && Object.entries(labels).every(([key, label]) => sample.labels[key] === label),
      )
      if (!found) throw new Error(`no sample ${name} ${JSON.stringify(labels)}`)
      return found.value
    },
  }
}
