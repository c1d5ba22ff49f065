import { describe, expect, test } from 'vitest'
import { createEmailQueue, createTemplateRenderer, MailstreamError } from '../../src/index.js'
import { consentNoticeKey, sendConsentNotice } from '../../src/korea/notices.js'
import { harness } from '../helpers/queue.js'
import { connect, keysOf, uniquePrefix } from '../helpers/redis.js'

const redis = connect()

const sender = {
  name: '밸리티',
  email: 'privacy@vality.kr',
  phone: '02-123-4567',
  address: '서울특별시 중구 세종대로 1',
}
const renderer = () => createTemplateRenderer({ defaults: { brandName: 'Vality', frontendUrl: 'https://vality.kr' } })

// 2026-12-03 10:15 in Seoul.
const AT = Date.parse('2026-12-03T01:15:00Z')

describe('sendConsentNotice', () => {
  test('enqueues the consent-notice template; the worker sends it with sender name, date and result (ko)', async () => {
    const templates = renderer()
    const h = harness(redis)
    const queue = createEmailQueue({ redis, prefix: h.prefix, templates })
    try {
      const result = await sendConsentNotice(queue, {
        to: 'Reader@Example.com',
        change: 'withdrawn',
        at: AT,
        sender,
        method: '수신거부 링크',
      })
      expect(result.duplicate).toBe(false)
      expect((await queue.getStatus(result.id))?.type).toBe('consent-notice')
      h.worker({ templates }).start()
      const [sent] = await h.transport.waitForCount(1)
      const message = sent?.message
      expect(message?.subject).toBe('[밸리티] 광고성 정보 수신동의 철회 처리 결과 안내')
      expect(message?.subject).not.toContain('(광고)')
      expect(message?.to).toEqual([{ address: 'Reader@Example.com' }])
      const text = message?.text as string
      expect(text).toContain('전송자: 밸리티')
      expect(text).toContain('요청 내용: 광고성 정보 수신동의 철회 (수신거부 링크)')
      expect(text).toContain('요청일: 2026년 12월 3일')
      expect(text).toContain('처리 결과: 수신동의 철회 완료')
      expect(text).toContain('privacy@vality.kr')
      expect(text).not.toContain('수신동의 완료')
      // A notice, not advertising: no unsubscribe headers.
      expect(message?.headers?.['List-Unsubscribe']).toBeUndefined()
    } finally {
      await queue.close()
      await templates.close()
    }
  })

  test('the same change twice (a retried handler) is one job; another change, or a later one, is another', async () => {
    const { queue } = harness(redis)
    const first = await sendConsentNotice(queue, { to: 'reader@example.com', change: 'consented', at: AT, sender })
    const retried = await sendConsentNotice(queue, {
      to: ' READER@example.com',
      change: 'consented',
      at: new Date(AT).toISOString(),
      sender,
    })
    expect(retried).toEqual({ id: first.id, status: first.status, duplicate: true })
    const withdrawn = await sendConsentNotice(queue, {
      to: 'reader@example.com',
      change: 'withdrawn',
      at: AT + 60_000,
      sender,
    })
    expect(withdrawn.duplicate).toBe(false)
    // Consented again the next day, then withdrew again: each is a change of its own.
    const again = await sendConsentNotice(queue, {
      to: 'reader@example.com',
      change: 'consented',
      at: AT + 86_400_000,
      sender,
    })
    const withdrawnAgain = await sendConsentNotice(queue, {
      to: 'reader@example.com',
      change: 'withdrawn',
      at: AT + 86_460_000,
      sender,
    })
    expect(new Set([first.id, withdrawn.id, again.id, withdrawnAgain.id]).size).toBe(4)
    expect(again.duplicate || withdrawnAgain.duplicate).toBe(false)
  })

  test('without `at`: one notice per address, change and Seoul day', async () => {
    const { queue } = harness(redis)
    // 23:59 and 00:01 in Seoul, the same day in UTC: two Seoul days.
    const late = Date.parse('2026-12-03T14:59:00Z')
    const early = Date.parse('2026-12-03T15:01:00Z')
    const a = await sendConsentNotice(queue, { to: 'r@example.com', change: 'refused', sender, now: late - 3600_000 })
    const b = await sendConsentNotice(queue, { to: 'r@example.com', change: 'refused', sender, now: late })
    const c = await sendConsentNotice(queue, { to: 'r@example.com', change: 'refused', sender, now: early })
    expect(b).toMatchObject({ id: a.id, duplicate: true })
    expect(c.duplicate).toBe(false)
    expect(consentNoticeKey('R@Example.com', 'refused', undefined, late)).toBe(
      consentNoticeKey('r@example.com', 'refused', undefined, late - 3600_000),
    )
    // The key names no one: the address is hashed.
    expect(consentNoticeKey('r@example.com', 'refused', AT, AT)).not.toContain('example')
  })

  test('a strict queue takes the retry too: nothing in the job depends on the time of the call', async () => {
    const prefix = uniquePrefix('notice')
    const queue = createEmailQueue({ redis, prefix, strictIdempotency: true })
    try {
      const first = await sendConsentNotice(queue, {
        to: 'r@example.com',
        change: 'consented',
        at: AT,
        sender,
        now: AT,
      })
      const later = await sendConsentNotice(queue, {
        to: 'r@example.com',
        change: 'consented',
        at: AT,
        sender,
        now: AT + 3 * 86_400_000,
      })
      expect(later).toMatchObject({ id: first.id, duplicate: true })
    } finally {
      await queue.close()
    }
  })

  test('bad input is E_VALIDATION naming the field, and nothing is written', async () => {
    const { queue, prefix } = harness(redis)
    const cases: [Record<string, unknown>, string][] = [
      [{ to: 'not an address', change: 'consented', sender }, 'to'],
      [{ to: 'r@example.com', change: 'maybe', sender }, 'change'],
      [{ to: 'r@example.com', change: 'consented', at: 'yesterday', sender }, 'at'],
      [{ to: 'r@example.com', change: 'consented', sender: { name: 'A\r\nBcc: x@evil.example' } }, 'sender.name'],
      [{ to: 'r@example.com', change: 'consented' }, 'sender'],
      [
        { to: 'r@example.com', change: 'consented', sender: { name: 'V', email: 'javascript:alert(1)' } },
        'sender.email',
      ],
      [{ to: 'r@example.com', change: 'consented', sender, method: 'x'.repeat(500) }, 'method'],
    ]
    for (const [input, field] of cases) {
      const error = await sendConsentNotice(queue, input as never).catch((caught: unknown) => caught)
      expect(error, field).toBeInstanceOf(MailstreamError)
      expect(error).toMatchObject({ code: 'E_VALIDATION', field })
    }
    expect(await keysOf(redis, prefix)).toEqual([])
  })
})

describe('consent-notice template', () => {
  const templates = renderer()
  const job = { id: 'job-1', type: 'consent-notice', to: [{ address: 'r@example.com' }] }

  test.each([
    [
      'ko',
      'consented',
      '[밸리티] 광고성 정보 수신동의 처리 결과 안내',
      '처리 결과: 수신동의 완료. 2026년 12월 3일부터',
    ],
    ['ko', 'refused', '[밸리티] 광고성 정보 수신거부 처리 결과 안내', '처리 결과: 수신거부 완료'],
    ['en', 'consented', '[Vality Ltd] Your advertising email choice has been processed', 'Result: consent recorded'],
    ['en', 'withdrawn', '[Vality Ltd] Your advertising email choice has been processed', 'Result: consent withdrawn'],
  ])('%s, %s: subject, sender, date and result', async (locale, change, subject, result) => {
    const name = locale === 'ko' ? '밸리티' : 'Vality Ltd'
    const date = locale === 'ko' ? '2026년 12월 3일' : 'December 3, 2026'
    const rendered = await templates.render(
      'consent-notice',
      { senderName: name, change, [change]: true, date, name: '<b>Kim</b>' },
      { locale, job },
    )
    expect(rendered.subject).toBe(subject)
    expect(rendered.text).toContain(locale === 'ko' ? `전송자: ${name}` : `Sender: ${name}`)
    expect(rendered.text).toContain(locale === 'ko' ? `요청일: ${date}` : `Date of request: ${date}`)
    expect(rendered.text).toContain(result)
    expect(rendered.html).toContain('&lt;b&gt;Kim&lt;/b&gt;')
    expect(rendered.html).toContain(`<html lang="${locale}">`)
  })

  test('sender name and date are required', async () => {
    await expect(templates.render('consent-notice', { change: 'consented', date: 'x' }, { job })).rejects.toMatchObject(
      {
        code: 'E_TEMPLATE',
        field: 'senderName',
      },
    )
  })
})
