import { describe, expect, it } from 'vitest'
import { checkAdvertisingFooter, describeFooterCheck, visibleText } from '../../src/korea/footer.js'
import type { AdvertisingSender } from '../../src/korea/types.js'

const sender: AdvertisingSender = {
  name: '주식회사 밸리티',
  email: 'ad@vality.kr',
  phone: '02-1234-5678',
  address: '서울특별시 중구 세종대로 110',
}
const url = 'https://vality.kr/unsubscribe?token=abc.def'

const footerHtml = `<p>보내는 사람: 주식회사 밸리티 · 이메일: <a href="mailto:ad@vality.kr">ad@vality.kr</a> · 전화: 02-1234-5678 · 주소: 서울특별시 중구 세종대로 110</p>
<p>수신거부는 무료입니다. <a href="https://vality.kr/unsubscribe?token=abc.def">수신거부</a></p>`
const footerText = `보내는 사람: 주식회사 밸리티 · 이메일: ad@vality.kr · 전화: 02-1234-5678 · 주소: 서울특별시 중구 세종대로 110
수신거부 [${url}]`

describe('the advertising footer check', () => {
  it('passes when both parts show every item and the refusal link', () => {
    const check = checkAdvertisingFooter({ html: `<h1>봄 세일</h1>${footerHtml}`, text: footerText }, sender, url)
    expect(check).toEqual({ ok: true, html: [], text: [] })
  })

  it('passes without a known link when the link is named as a refusal', () => {
    expect(checkAdvertisingFooter({ html: footerHtml, text: footerText }, sender).ok).toBe(true)
  })

  it('refuses an image-only body that hides the items in the image and its alt text', () => {
    const html = `<img src="https://vality.kr/ad.png" alt="주식회사 밸리티 ad@vality.kr 02-1234-5678 서울특별시 중구 세종대로 110 수신거부">`
    const check = checkAdvertisingFooter({ html, text: footerText }, sender, url)
    expect(check.ok).toBe(false)
    expect(check.html).toEqual(['name', 'email', 'phone', 'address', 'unsubscribe'])
    expect(check.text).toEqual([])
    expect(describeFooterCheck(check)).toMatch(/HTML part lacks name, email, phone, address, unsubscribe/)
  })

  it('does not count items hidden in a preheader, a comment or the head', () => {
    const html = `<html><head><title>주식회사 밸리티</title></head><body><span style="display:none">02-1234-5678</span><!-- 서울특별시 중구 세종대로 110 --><p>주식회사 밸리티 ad@vality.kr</p></body></html>`
    const check = checkAdvertisingFooter({ html, text: footerText }, sender, url)
    expect(check.html).toEqual(['phone', 'address', 'unsubscribe'])
  })

  it('names what the text part lacks', () => {
    const check = checkAdvertisingFooter({ html: footerHtml, text: '봄 세일' }, sender, url)
    expect(check.ok).toBe(false)
    expect(check.text).toEqual(['name', 'email', 'phone', 'address', 'unsubscribe'])
  })

  it('wants the signed link itself when one was given, not any link', () => {
    const other = footerHtml.replace(url, 'https://vality.kr/elsewhere')
    expect(checkAdvertisingFooter({ html: other, text: footerText }, sender, url).html).toEqual(['unsubscribe'])
  })

  it('reads entities and runs of spaces as a reader sees them', () => {
    expect(visibleText('<p>주식회사&nbsp;밸리티 &amp;   co</p>')).toBe('주식회사 밸리티 & co')
  })

  it('refuses a message with no body at all', () => {
    expect(checkAdvertisingFooter({}, sender).ok).toBe(false)
  })
})
