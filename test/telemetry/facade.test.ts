import * as api from '@opentelemetry/api'
import { trace } from '@opentelemetry/api'
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base'
import { afterAll, beforeEach, describe, expect, test } from 'vitest'
import { hashAddress } from '../../src/telemetry/spans.js'
import { createTracing, parseTraceparent, redactAddresses } from '../../src/telemetry/tracing.js'

const exporter = new InMemorySpanExporter()
const register = (options: ConstructorParameters<typeof BasicTracerProvider>[0] = {}) => {
  trace.disable()
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)], ...options }),
  )
}
const settle = () => new Promise((resolve) => setTimeout(resolve, 5))
const start = { kind: 'internal' as const, attributes: { 'mailstream.a': 1, 'mailstream.none': undefined } }

beforeEach(() => {
  exporter.reset()
  register()
})
afterAll(() => {
  trace.disable()
})

describe('the facade', () => {
  test('gives no span until the API has loaded, then records with it', async () => {
    let release: (value: unknown) => void = () => {}
    const tracing = createTracing(undefined, () => new Promise((resolve) => (release = resolve)))
    await settle() // the import has started, and not finished
    expect(tracing.active()).toBe(false)
    expect(tracing.start('early', start)).toBeUndefined()
    release(api)
    await settle()
    expect(tracing.active()).toBe(true)
    const span = tracing.start('late', start)
    expect(span?.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    span?.end()
    const [recorded, ...more] = exporter.getFinishedSpans()
    expect(more).toHaveLength(0)
    expect(recorded?.name).toBe('late')
    // Undefined attributes are left out, not recorded as empty.
    expect(recorded?.attributes).toEqual({ 'mailstream.a': 1 })
  })

  test('a span the sampler drops is neither recorded nor given a traceparent to store', async () => {
    register({ sampler: new AlwaysOffSampler() })
    const tracing = createTracing(undefined, async () => api)
    await settle()
    expect(tracing.active()).toBe(true)
    expect(tracing.start('dropped', start)).toBeUndefined()
    expect(exporter.getFinishedSpans()).toHaveLength(0)
  })

  test('tracing: false records nothing, whatever is registered', async () => {
    const tracing = createTracing(false, async () => api)
    await settle()
    expect(tracing.active()).toBe(false)
    expect(tracing.start('x', start)).toBeUndefined()
  })

  test('a stored traceparent becomes a link; a malformed or all-zero one is ignored', async () => {
    const tracing = createTracing(undefined, async () => api)
    await settle()
    const parent = tracing.start('parent', start)
    for (const link of [parent?.traceparent, 'garbage', `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`, '{"x":1}']) {
      tracing.start('child', { ...start, link })?.end()
    }
    parent?.end()
    const children = exporter.getFinishedSpans().filter((span) => span.name === 'child')
    expect(children.map((span) => span.links.length)).toEqual([1, 0, 0, 0])
    expect(children[0]?.links[0]?.context).toMatchObject({ isRemote: true, traceFlags: 1 })
    expect(parseTraceparent(api, 42)).toBeUndefined()
  })

  test('fail() sets status ERROR and error.type, with the addresses in the message blanked out', async () => {
    const tracing = createTracing(undefined, async () => api)
    await settle()
    const span = tracing.start('failing', start)
    span?.fail(Object.assign(new Error('550 5.1.1 <who@example.com>: no such user'), { code: 'E_TRANSPORT' }))
    span?.end()
    const [recorded] = exporter.getFinishedSpans()
    expect(recorded?.status).toEqual({ code: api.SpanStatusCode.ERROR, message: '550 5.1.1 <[address]>: no such user' })
    expect(recorded?.attributes['error.type']).toBe('E_TRANSPORT')
  })
})

test('redactAddresses and hashAddress', () => {
  expect(redactAddresses('to a.b+c@example.co.kr, "x"@y and me@host.io.')).toBe('to [address], "x"@y and [address].')
  expect(hashAddress('Reader@Example.com')).toBe(hashAddress('reader@example.com'))
  expect(hashAddress('reader@example.com')).toMatch(/^[0-9a-f]{16}$/)
})
