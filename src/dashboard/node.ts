import type { IncomingMessage, ServerResponse } from 'node:http'

/** Express's `next`: called when a request is not for the dashboard. */
export type NextFunction = (error?: unknown) => void

/** What Express adds to a request when a handler is mounted under a path (`app.use('/ops', ...)`). */
interface MountedRequest extends IncomingMessage {
  /** The mount path (`/ops`), stripped from `req.url`. */
  baseUrl?: string
  /** The path as the client sent it. */
  originalUrl?: string
}

/**
 * A web `Request` for a Node request: method, headers, the full path (Express's `originalUrl`)
 * and a signal that aborts when the client goes away. No body: the dashboard's API takes none,
 * so a body parser in front of it does no harm.
 */
function toWebRequest(req: MountedRequest, signal: AbortSignal): Request {
  const path = req.originalUrl ?? req.url ?? '/'
  const host = typeof req.headers.host === 'string' && /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host)
  // Concatenated, not resolved against a base: a path such as //other/x stays a path.
  const url = path.startsWith('/') ? `http://${host ? req.headers.host : 'localhost'}${path}` : path
  const headers = new Headers()
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith(':') || value === undefined) continue
    if (Array.isArray(value)) for (const item of value) headers.append(name, item)
    else headers.set(name, value)
  }
  return new Request(url, { method: req.method ?? 'GET', headers, signal })
}

/** Writes a web `Response` to a Node response, streaming its body (event streams included). */
async function writeResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {}
  response.headers.forEach((value, name) => {
    headers[name] = value
  })
  res.writeHead(response.status, headers)
  if (!response.body) {
    res.end()
    return
  }
  res.flushHeaders()
  const reader = response.body.getReader()
  const cancel = () => {
    reader.cancel().catch(() => {})
  }
  res.once('close', cancel)
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done || res.destroyed) break
      if (!res.write(value)) {
        await new Promise<void>((resolve) => {
          const go = () => {
            res.off('drain', go)
            res.off('close', go)
            resolve()
          }
          res.once('drain', go)
          res.once('close', go)
        })
      }
    }
  } catch {
    // The stream was cancelled because the client went away.
  } finally {
    res.off('close', cancel)
  }
  if (!res.destroyed) res.end()
}

/**
 * Runs a web handler for a Node request. `handle` gets the mount path Express stripped (or
 * undefined) and resolves null when the request is not for it: then `next()` is called.
 */
export function handleNodeRequest(
  req: IncomingMessage,
  res: ServerResponse,
  next: NextFunction | undefined,
  handle: (request: Request, mountPath: string | undefined) => Promise<Response | null>,
): void {
  const mounted = req as MountedRequest
  const abort = new AbortController()
  res.once('close', () => abort.abort())
  let request: Request
  try {
    request = toWebRequest(mounted, abort.signal)
  } catch {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('bad request')
    return
  }
  handle(request, typeof mounted.baseUrl === 'string' ? mounted.baseUrl : undefined)
    .then((response) => {
      if (response) return writeResponse(response, res)
      next?.()
    })
    .catch((error: unknown) => {
      if (next) next(error)
      else if (!res.headersSent) res.writeHead(500).end()
      else res.destroy()
    })
}
