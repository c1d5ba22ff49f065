import { describe, expect, test } from 'vitest'
import { createHonoApp } from '../../examples/hono/app.js'
import { booter, exampleSuite, postJson } from './contract.js'

exampleSuite({ name: 'Hono', createApp: createHonoApp })

describe('Hono: advertising', () => {
  const boot = booter(createHonoApp)

  test('without consent records, the consent routes and a sponsored issue answer 501 and send nothing', async () => {
    const { url, transport } = await boot()
    for (const path of ['/api/consents', '/api/consents/withdraw']) {
      const reply = await postJson(`${url}${path}`, { email: 'a@example.com', code: '123456' })
      expect(reply.status).toBe(501)
      expect(await reply.json()).toMatchObject({ error: { code: 'E_NOT_IMPLEMENTED' } })
    }
    expect((await fetch(`${url}/api/consents/action?token=x`)).status).toBe(501)
    const sponsored = await postJson(`${url}/api/issues/ad-1/publish`, {
      title: 'Issue',
      body: 'News.',
      sponsor: { name: 'Acme', body: 'Buy.' },
    })
    expect(sponsored.status).toBe(501)
    expect(transport.messages).toHaveLength(0)
  })
})
