// Text into HTML: the one escaper shared by templates, the preview transport and the dashboard page.

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/**
 * Escapes text for HTML element content and quoted attributes. Only `& < > " '`: Mustache's default
 * also mangles `/` and `=`, which breaks URLs.
 */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] as string)
}
