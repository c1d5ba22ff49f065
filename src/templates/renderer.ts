// Importers of `templates/renderer` keep working: the renderer is wired in index.ts.
export {
  createTemplateRenderer,
  type RenderedTemplate,
  type TemplateDefaults,
  type TemplateDefinition,
  type TemplateRenderer,
  type TemplateRendererOptions,
  type TemplateSource,
  type UnsubscribeOptions,
} from './index.js'
