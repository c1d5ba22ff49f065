/**
 * npm run example:express: the Express example, configured from the environment (see the
 * README's Examples section). SIGTERM or SIGINT (Ctrl-C) drains the worker and exits.
 */
import { loadConfig } from '../shared/config.js'
import { runServer } from '../shared/server.js'
import { createExpressApp } from './app.js'

await runServer(loadConfig(), createExpressApp)
