// OpenTelemetry tracing behind a small facade: `@opentelemetry/api` is an optional peer, loaded
// once and lazily; without it, with tracing off, or with no SDK registered, nothing is recorded
// and nothing is allocated per job.
import type * as OpenTelemetry from '@opentelemetry/api'

type Api = typeof OpenTelemetry

/** `tracing` of `createEmailQueue` and `createEmailWorker`. */
export interface TracingOptions {
  /** Record the subject of each message (`mailstream.subject`). Personal data: off by default. */
  recordSubject?: boolean
}

/** Attribute values; undefined ones are left out. */
export type SpanAttributes = Record<string, string | number | boolean | string[] | undefined>

/** One recording span, with only what mailstream needs of it. */
export interface SpanHandle {
  /** Its context as a W3C `traceparent`, to store with a job. */
  readonly traceparent: string
  set(attributes: SpanAttributes): void
  /** A span event; `time` in epoch ms (now when not given). */
  event(name: string, attributes?: SpanAttributes, time?: number): void
  /** Status ERROR, with `error.type` and the error's message, addresses blanked out. */
  fail(error: unknown): void
  end(): void
  /** Runs `fn` with this span as the active one, so that a transport's own spans nest under it. */
  run<T>(fn: () => T): T
}

export type SpanKindName = 'producer' | 'consumer' | 'internal'

export interface SpanStart {
  kind: SpanKindName
  attributes: SpanAttributes
  /** A stored `traceparent` to link to (ignored when it is not a valid one). */
  link?: string | undefined
}

export interface Tracing {
  readonly recordSubject: boolean
  /**
   * False before the API has loaded, without it, with tracing off or with no SDK registered. Costs
   * a check and allocates nothing: callers ask it before they build a span's name and attributes.
   */
  active(): boolean
  /**
   * A recording span, or undefined: before the API has loaded, without it, with tracing off, with
   * no SDK registered (checked before any span is made) or when the sampler drops it.
   */
  start(name: string, start: SpanStart): SpanHandle | undefined
}

export type ImportApi = () => Promise<unknown>

const importApi: ImportApi = () => import('@opentelemetry/api')

interface Loaded {
  api: Api
  /** The provider that a proxy delegates to while no SDK is registered. */
  noop: unknown
  kinds: Record<SpanKindName, OpenTelemetry.SpanKind>
}

/** The namespace a dynamic import gives, in ESM or through the CJS build's require. */
function loadedFrom(module: unknown): Loaded | undefined {
  const candidate = module as Partial<Api> & { default?: Partial<Api> }
  const api = (candidate?.trace ? candidate : candidate?.default) as Api | undefined
  if (!api?.trace || !api.context || typeof api.trace.getTracer !== 'function') return undefined
  let noop: unknown
  try {
    noop = api.ProxyTracerProvider ? new api.ProxyTracerProvider().getDelegate() : undefined
  } catch {
    noop = undefined
  }
  const { PRODUCER, CONSUMER, INTERNAL } = api.SpanKind
  return { api, noop, kinds: { producer: PRODUCER, consumer: CONSUMER, internal: INTERNAL } }
}

/** Imports the API; resolves undefined when it is not installed or is not the API. Never rejects. */
const load = (importer: ImportApi): Promise<Loaded | undefined> =>
  Promise.resolve()
    .then(importer)
    .then(loadedFrom, () => undefined)

let shared: Promise<Loaded | undefined> | undefined
let sharedLoaded: Loaded | undefined

/** The one load of `@opentelemetry/api` in this process, started by the first queue or worker. */
function sharedLoad(): Promise<Loaded | undefined> {
  shared ??= load(importApi).then((loaded) => {
    sharedLoaded = loaded
    return loaded
  })
  return shared
}

/** Resolves once the API has loaded (true) or turned out missing (false). For tests and hosts that trace from the start. */
export const loadTracingApi = (): Promise<boolean> => sharedLoad().then((loaded) => loaded !== undefined)

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/

export function formatTraceparent({ traceId, spanId, traceFlags }: OpenTelemetry.SpanContext): string {
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`
}

/** A stored `traceparent` as a remote span context; undefined when it is not a valid one. */
export function parseTraceparent(api: Api, value: unknown): OpenTelemetry.SpanContext | undefined {
  if (typeof value !== 'string') return undefined
  const match = TRACEPARENT_RE.exec(value)
  if (!match) return undefined
  const context = {
    traceId: match[1] as string,
    spanId: match[2] as string,
    traceFlags: Number.parseInt(match[3] as string, 16),
    isRemote: true,
  }
  return api.trace.isSpanContextValid(context) ? context : undefined
}

/** Something@something, up to a space, bracket, quote or punctuation (a sentence's final dot stays). */
const ADDRESS_RE = /[^\s<>"'(),;:@]+@[^\s<>"'(),;:@]*[^\s<>"'(),;:@.]/g

/** Error text without the email addresses in it (an SMTP reply often names the recipient). */
export function redactAddresses(text: string): string {
  return text.replace(ADDRESS_RE, '[address]')
}

function clean(attributes: SpanAttributes): OpenTelemetry.Attributes {
  const out: OpenTelemetry.Attributes = {}
  for (const key in attributes) {
    const value = attributes[key]
    if (value !== undefined) out[key] = value
  }
  return out
}

function errorType(error: unknown): string {
  const code = (error as { code?: unknown })?.code
  if (typeof code === 'string' && code !== '') return code
  return error instanceof Error ? error.name : typeof error
}

function errorMessage(error: unknown): string {
  try {
    return redactAddresses(error instanceof Error ? error.message : String(error)).slice(0, 500)
  } catch {
    return 'unreadable error'
  }
}

function handle(loaded: Loaded, span: OpenTelemetry.Span): SpanHandle {
  const { api } = loaded
  return {
    traceparent: formatTraceparent(span.spanContext()),
    set: (attributes) => span.setAttributes(clean(attributes)),
    event: (name, attributes = {}, time) => span.addEvent(name, clean(attributes), time),
    fail(error) {
      span.setAttribute('error.type', errorType(error))
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: errorMessage(error) })
    },
    end: () => span.end(),
    run: (fn) => api.context.with(api.trace.setSpan(api.context.active(), span), fn),
  }
}

/** Tracing that records nothing: `tracing: false`, or the API cannot load. */
export const NO_TRACING: Tracing = { recordSubject: false, active: () => false, start: () => undefined }

/** False while the global provider is a proxy with nothing behind it (no SDK registered). */
function hasSdk({ api, noop }: Loaded): boolean {
  const provider = api.trace.getTracerProvider() as { getDelegate?(): unknown }
  return noop === undefined || typeof provider.getDelegate !== 'function' || provider.getDelegate() !== noop
}

/**
 * The facade for one queue or worker. Starts loading the API (once per process); until it has
 * loaded, `start` gives no span. `importer` stands in for `import('@opentelemetry/api')` in tests.
 */
export function createTracing(option: TracingOptions | false | undefined, importer?: ImportApi): Tracing {
  if (option === false) return NO_TRACING
  let loaded = importer ? undefined : sharedLoaded
  if (!loaded) {
    void (importer ? load(importer) : sharedLoad()).then((result) => {
      loaded = result
    })
  }
  return {
    recordSubject: option?.recordSubject === true,
    active: () => loaded !== undefined && hasSdk(loaded),
    start(name, { kind, attributes, link }) {
      // No SDK: no span is made at all (the API would make a non-recording one).
      if (!loaded || !hasSdk(loaded)) return undefined
      const { api, kinds } = loaded
      const linked = link === undefined ? undefined : parseTraceparent(api, link)
      // The tracer of the provider registered now (a host may replace its SDK).
      const span = api.trace.getTracer('mailstream').startSpan(name, {
        kind: kinds[kind],
        attributes: clean(attributes),
        ...(linked && { links: [{ context: linked }] }),
      })
      if (!span.isRecording()) {
        span.end()
        return undefined
      }
      return handle(loaded, span)
    },
  }
}
