// The dashboard's routes and how a path finds one. Pure: no Redis, no responses.

export type RouteName =
  | 'page'
  | 'script'
  | 'style'
  | 'stats'
  | 'dead'
  | 'retry'
  | 'retryAll'
  | 'purge'
  | 'failures'
  | 'batches'
  | 'batch'
  | 'decideAb'
  | 'sequences'
  | 'providers'
  | 'events'

interface Route {
  name: RouteName
  method: 'GET' | 'POST'
  path: string
}

const ROUTES: readonly Route[] = [
  { name: 'page', method: 'GET', path: '' },
  { name: 'script', method: 'GET', path: 'app\\.js' },
  { name: 'style', method: 'GET', path: 'app\\.css' },
  { name: 'stats', method: 'GET', path: 'api/stats' },
  { name: 'dead', method: 'GET', path: 'api/dead' },
  { name: 'retryAll', method: 'POST', path: 'api/dead/retry-all' },
  { name: 'purge', method: 'POST', path: 'api/dead/purge' },
  { name: 'retry', method: 'POST', path: 'api/dead/([^/]+)/retry' },
  { name: 'failures', method: 'GET', path: 'api/failures' },
  { name: 'batches', method: 'GET', path: 'api/batches' },
  { name: 'decideAb', method: 'POST', path: 'api/batches/([^/]+)/ab/decide' },
  { name: 'batch', method: 'GET', path: 'api/batches/([^/]+)' },
  { name: 'sequences', method: 'GET', path: 'api/sequences' },
  { name: 'providers', method: 'GET', path: 'api/providers' },
  { name: 'events', method: 'GET', path: 'api/events' },
]
const RELATIVE = ROUTES.map((route) => ({ route, re: new RegExp(`^${route.path}$`) }))
const TRAILING = ROUTES.map((route) => ({ route, re: new RegExp(`^(.*)/${route.path}$`) }))

export interface Match {
  name: RouteName
  method: 'GET' | 'POST'
  param?: string
}

/** Where a request goes: a route, a redirect to the base path with its slash, or nothing of ours. */
export type Resolved = { kind: 'route'; match: Match } | { kind: 'redirect'; location: string } | { kind: 'none' }

function find(pathname: string, base: string | undefined): { route: Route; param: string | undefined } | undefined {
  if (base === undefined) {
    for (const { route, re } of TRAILING) {
      const groups = re.exec(pathname)
      if (groups) return { route, param: groups[2] }
    }
    return undefined
  }
  const rest = pathname.slice(base.length + 1)
  for (const { route, re } of RELATIVE) {
    const groups = re.exec(rest)
    if (groups) return { route, param: groups[1] }
  }
  return undefined
}

function toMatch(route: Route, param: string | undefined): Match {
  const match: Match = { name: route.name, method: route.method }
  if (param !== undefined) {
    try {
      match.param = decodeURIComponent(param)
    } catch {
      match.param = param
    }
  }
  return match
}

/**
 * `base` known (option, or Express's `req.baseUrl`): the path must lie under it. Not known: the
 * route is recognised by how the path ends, so the page works under any prefix it is given.
 */
export function resolve(pathname: string, base: string | undefined, lenient: boolean): Resolved {
  const slashRedirect = (): Resolved => ({ kind: 'redirect', location: `${pathname.split('/').pop() ?? ''}/` })
  if (base !== undefined) {
    if (base !== '' && pathname === base) return slashRedirect()
    if (!pathname.startsWith(`${base}/`)) return { kind: 'none' }
  }
  const found = find(pathname, base)
  if (found) return { kind: 'route', match: toMatch(found.route, found.param) }
  // The base path without its slash: the page's relative URLs need the slash, so redirect.
  const last = pathname.split('/').pop() ?? ''
  if (lenient && last !== '' && !last.includes('.') && !pathname.includes('/api/')) return slashRedirect()
  return { kind: 'none' }
}
