import { createHonoApp } from '../../examples/hono/app.js'
import { exampleSuite } from './contract.js'

exampleSuite({ name: 'Hono', createApp: createHonoApp })
