import { describe, expect, it } from 'vitest'
import { parseJob } from '../../src/job.js'
import {
  PROVIDER_DOMAINS,
  providerOfAddress,
  providerOfDomain,
  providersOfList,
  withProviders,
  withProvidersOfList,
} from '../../src/providers/classify.js'

describe('mailbox provider classification', () => {
  it('knows the Korean providers and the big international ones by their domains', () => {
    expect(providerOfDomain('naver.com')).toBe('naver')
    for (const domain of ['daum.net', 'hanmail.net', 'kakao.com']) expect(providerOfDomain(domain)).toBe('kakao')
    expect(providerOfDomain('gmail.com')).toBe('gmail')
    expect(providerOfDomain('googlemail.com')).toBe('gmail')
    expect(providerOfDomain('nate.com')).toBe('nate')
    for (const domain of ['outlook.com', 'hotmail.com', 'live.com']) expect(providerOfDomain(domain)).toBe('outlook')
    expect(providerOfDomain('icloud.com')).toBe('icloud')
    expect(providerOfDomain('yahoo.com')).toBe('yahoo')
    expect(providerOfDomain('example.co.kr')).toBe('other')
    // A subdomain is another domain: mail.naver.com is not a mailbox domain.
    expect(providerOfDomain('mail.naver.com')).toBe('other')
  })

  it('takes an address in any case, and an extra map for domains the built-in one does not know', () => {
    expect(providerOfAddress('Kim@NAVER.com')).toBe('naver')
    const extra = new Map([['corp.example', 'gmail']])
    expect(providerOfAddress('a@corp.example', extra)).toBe('gmail')
    // The built-in map wins: naver.com cannot be moved to another provider by mistake.
    expect(providerOfAddress('a@naver.com', new Map([['naver.com', 'gmail']]))).toBe('naver')
  })

  it('counts recipients per provider from the stored recipient list', () => {
    expect(providersOfList('a@naver.com')).toEqual({ naver: 1 })
    expect(providersOfList('a@naver.com,b@daum.net,c@hanmail.net,d@x.kr')).toEqual({ naver: 1, kakao: 2, other: 1 })
    expect(providersOfList('')).toEqual({})
    // A local part with an @ in a quoted string does not exist here, but the last @ is the one that counts.
    expect(providersOfList('a@b@gmail.com,c@naver.com')).toEqual({ gmail: 1, naver: 1 })
  })

  it('adds the counts to a payload that stays valid JSON', () => {
    const payload = JSON.stringify({ id: 'j1', to: [{ address: 'a@naver.com' }] })
    const job = parseJob(withProviders(payload, { naver: 1 }))
    expect(job?.providers).toEqual({ naver: 1 })
    expect(job?.id).toBe('j1')
  })

  it('lists every domain once', () => {
    const all = Object.values(PROVIDER_DOMAINS).flat()
    expect(new Set(all).size).toBe(all.length)
  })
})

it('withProvidersOfList writes what withProviders(providersOfList) writes, one recipient or many', () => {
  const payload = '{"id":"a","type":"welcome"}'
  for (const rcpt of [
    'a@naver.com',
    'b@example.org',
    'a@naver.com,b@daum.net,c@hanmail.net',
    'x@gmail.com,y@gmail.com',
  ]) {
    expect(JSON.parse(withProvidersOfList(payload, rcpt))).toEqual(
      JSON.parse(withProviders(payload, providersOfList(rcpt))),
    )
  }
})
