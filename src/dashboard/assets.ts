import { BASE_HEADERS, PAGE_CSP } from './http.js'
import { type PageOptions, renderPage, SCRIPT, STYLESHEET } from './page.js'

/** The page, its script and its stylesheet, rendered once and served from the handler itself. */
/** The dashboard's three static responses. */
export interface Assets {
  page(): Response
  script(): Response
  style(): Response
}

export function createAssets(options: PageOptions): Assets {
  const page = renderPage(options)
  return {
    page: () =>
      new Response(page, {
        headers: { ...BASE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': PAGE_CSP },
      }),
    script: () =>
      new Response(SCRIPT, { headers: { ...BASE_HEADERS, 'content-type': 'text/javascript; charset=utf-8' } }),
    style: () => new Response(STYLESHEET, { headers: { ...BASE_HEADERS, 'content-type': 'text/css; charset=utf-8' } }),
  }
}
