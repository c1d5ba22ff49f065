export type Juice = typeof import('juice')

/**
 * A page's `<style>` inlined into its elements, with the options every template gets: the same at
 * build time (built-in templates) and at run time. Mustache tags and `[[key]]` slots are kept as they are.
 */
export function inlineCss(juice: Juice, html: string, extraCss: string | undefined): string {
  return juice(html, {
    extraCss: extraCss ?? '',
    preserveMediaQueries: true,
    removeStyleTags: true,
    applyWidthAttributes: true,
    applyHeightAttributes: true,
  })
}
