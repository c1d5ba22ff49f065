import { MailstreamError } from '../errors.js'
import type { Assets } from './assets.js'
import { json, problem } from './http.js'
import type { Match } from './routes.js'
import type { DashboardSource } from './source.js'

const MAX_LIST = 500

function countParam(url: URL, fallback: number): number {
  const raw = url.searchParams.get('count')
  if (raw === null) return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1 || value > MAX_LIST) {
    throw new MailstreamError('E_VALIDATION', `count: must be an integer from 1 to ${MAX_LIST}`, { field: 'count' })
  }
  return value
}

/** What one matched route answers; access was checked before. Throws what `errorResponse` maps. */
export function createApi(source: DashboardSource, assets: Assets, events: (request: Request) => Response) {
  return async function serve(match: Match, request: Request, url: URL): Promise<Response> {
    switch (match.name) {
      case 'page':
        return assets.page()
      case 'script':
        return assets.script()
      case 'style':
        return assets.style()
      case 'stats':
        return json(200, await source.stats())
      case 'dead':
        return json(200, await source.deadLetters(countParam(url, 50)))
      case 'retry': {
        const retried = await source.retry(match.param ?? '')
        if (retried === 0) return problem(404, 'E_NOT_FOUND', `no dead letter for ${match.param}`)
        return json(200, { retried })
      }
      case 'retryAll':
        return json(200, { retried: await source.retryAll() })
      case 'purge':
        return json(200, { purged: await source.purge() })
      case 'failures':
        return json(200, { items: await source.failures(countParam(url, 50)) })
      case 'batches':
        return json(200, { items: await source.batches() })
      case 'batch': {
        const id = match.param ?? ''
        const [state, stats] = await Promise.all([source.getBatch(id), source.batchStats(id)])
        if (!state) return problem(404, 'E_NOT_FOUND', `no batch ${id}`)
        return json(200, { ...state, totals: stats?.totals, rates: stats?.rates })
      }
      case 'decideAb': {
        const result = await source.decideAbTest(match.param ?? '')
        return json(200, result)
      }
      case 'sequences':
        return json(200, { items: await source.sequences() })
      case 'providers':
        return json(200, { items: await source.providers() })
      case 'events':
        return events(request)
    }
  }
}

export type Serve = ReturnType<typeof createApi>
