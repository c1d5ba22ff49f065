import type { TemplateDefinition } from '../types.js'
import consentNoticeEn from './consent-notice.en.html'
import consentNoticeKo from './consent-notice.ko.html'
import consentReminderEn from './consent-reminder.en.html'
import consentReminderKo from './consent-reminder.ko.html'
import layout from './layout.html'
import newsletterIssueEn from './newsletter-issue.en.html'
import newsletterIssueKo from './newsletter-issue.ko.html'
import subscriptionCancelEn from './subscription-cancel.en.html'
import subscriptionCancelKo from './subscription-cancel.ko.html'
import subscriptionConfirmEn from './subscription-confirm.en.html'
import subscriptionConfirmKo from './subscription-confirm.ko.html'
import verificationCodeEn from './verification-code.en.html'
import verificationCodeKo from './verification-code.ko.html'
import welcomeEn from './welcome.en.html'
import welcomeKo from './welcome.ko.html'

export const BUILTIN_TEMPLATE_NAMES = [
  'verification-code',
  'subscription-confirm',
  'subscription-cancel',
  'welcome',
  'newsletter-issue',
  'consent-notice',
  'consent-reminder',
] as const
export type BuiltInTemplateName = (typeof BUILTIN_TEMPLATE_NAMES)[number]

/** The responsive layout every built-in template (and, unless replaced, every user template) sits in. */
export const BUILTIN_LAYOUT = layout

/** Words of the layout, filled in once per template and locale (`[[key]]`). */
export const LAYOUT_STRINGS: Record<string, Record<string, string>> = {
  ko: {
    lang: 'ko',
    sentBy: '이 메일은 {{brandName}}에서 보냈습니다.',
    unsubscribe: '수신 거부',
    // The advertising footer (정보통신망법 제50조 제4항): who sends, and a free way to refuse.
    adSender: '보내는 사람',
    adEmail: '이메일',
    adPhone: '전화',
    adAddress: '주소',
    adRefusal:
      '더 이상 광고 메일을 받지 않으시려면 수신거부를 눌러 주세요. 수신거부는 무료이며 로그인 없이 바로 처리됩니다.',
    adRefuseLink: '수신거부',
  },
  en: {
    lang: 'en',
    sentBy: 'This email was sent by {{brandName}}.',
    unsubscribe: 'Unsubscribe',
    adSender: 'Sender',
    adEmail: 'Email',
    adPhone: 'Phone',
    adAddress: 'Address',
    adRefusal:
      'To stop receiving these advertising emails, select Unsubscribe. It is free and takes one click, with no login.',
    adRefuseLink: 'Unsubscribe',
  },
}

/**
 * What fills the hidden preview line when the data has no `preheader`, per built-in template: a
 * verification code's preview shows the code.
 */
export const BUILTIN_PREHEADERS: Partial<Record<BuiltInTemplateName, string>> = {
  'verification-code': '{{code}}',
}

/**
 * Invisible characters after the preview line: inbox previews show them as blank space instead of
 * running on into the first words of the page ("View in your browser").
 */
export const PREHEADER_FILLER = '&#847;&zwnj;&nbsp;'.repeat(80)

export const THEME_DEFAULTS = {
  brandColor: '#3b5bdb',
  textColor: '#1f2933',
  backgroundColor: '#f4f5f7',
  fontFamily:
    "-apple-system, BlinkMacSystemFont, 'Apple SD Gothic Neo', 'Malgun Gothic', 'Segoe UI', Roboto, Helvetica, Arial, sans-serif",
}

/** Styles for rendered Markdown (newsletter bodies), inlined once per issue. */
export const MARKDOWN_CSS = `
.markdown { font-size: 16px; line-height: 1.7; color: [[textColor]]; }
.markdown h1 { margin: 28px 0 12px 0; font-size: 22px; line-height: 1.3; }
.markdown h2 { margin: 28px 0 12px 0; font-size: 20px; line-height: 1.35; }
.markdown h3 { margin: 24px 0 8px 0; font-size: 17px; line-height: 1.4; }
.markdown h4, .markdown h5, .markdown h6 { margin: 20px 0 8px 0; font-size: 16px; }
.markdown p { margin: 0 0 16px 0; }
.markdown a { color: [[brandColor]]; text-decoration: underline; }
.markdown img { display: block; max-width: 100%; border: 0; margin: 8px 0 16px 0; }
.markdown ul, .markdown ol { margin: 0 0 16px 0; padding-left: 24px; }
.markdown li { margin: 0 0 6px 0; }
.markdown blockquote { margin: 0 0 16px 0; padding: 4px 0 4px 16px; border-left: 4px solid #d0d5dd; color: #4b5563; }
.markdown pre { margin: 0 0 16px 0; padding: 12px 16px; background-color: #f3f4f6; border-radius: 6px; font-size: 14px; line-height: 1.5; white-space: pre-wrap; word-break: break-word; }
.markdown code { font-family: 'SFMono-Regular', Menlo, Consolas, monospace; font-size: 14px; background-color: #f3f4f6; }
.markdown hr { border: 0; border-top: 1px solid #e5e7eb; margin: 24px 0; }
.markdown table { border-collapse: collapse; margin: 0 0 16px 0; }
.markdown th, .markdown td { padding: 6px 10px; border: 1px solid #e5e7eb; font-size: 14px; }
.markdown th { background-color: #f9fafb; }
`

/** What every built-in template needs from the renderer's `defaults` (or the job's data). */
export const BUILTIN_DEFAULTS = ['brandName', 'frontendUrl'] as const

const common = { required: [...BUILTIN_DEFAULTS], urls: ['frontendUrl', 'logoUrl'] }

export const BUILTIN_TEMPLATES: Record<BuiltInTemplateName, TemplateDefinition> = {
  'verification-code': {
    required: [...common.required, 'code'],
    urls: common.urls,
    data: { expiresInMinutes: 10 },
    locales: {
      ko: { subject: '[{{brandName}}] 인증 코드 {{code}}', html: verificationCodeKo },
      en: { subject: '{{code}} is your {{brandName}} verification code', html: verificationCodeEn },
    },
  },
  'subscription-confirm': {
    required: [...common.required, 'confirmUrl'],
    urls: [...common.urls, 'confirmUrl'],
    unsubscribe: true,
    locales: {
      ko: { subject: '[{{brandName}}] 구독 신청을 확인해 주세요', html: subscriptionConfirmKo },
      en: { subject: 'Confirm your subscription to {{brandName}}', html: subscriptionConfirmEn },
    },
  },
  'subscription-cancel': {
    required: common.required,
    urls: [...common.urls, 'resubscribeUrl'],
    locales: {
      ko: { subject: '[{{brandName}}] 뉴스레터 구독이 해지되었습니다', html: subscriptionCancelKo },
      en: { subject: 'You have been unsubscribed from {{brandName}}', html: subscriptionCancelEn },
    },
  },
  welcome: {
    required: common.required,
    urls: [...common.urls, 'ctaUrl'],
    unsubscribe: true,
    locales: {
      ko: { subject: '{{brandName}}에 오신 것을 환영합니다', html: welcomeKo },
      en: { subject: 'Welcome to {{brandName}}', html: welcomeEn },
    },
  },
  'newsletter-issue': {
    required: [...common.required, 'title', 'body'],
    markdown: ['body'],
    urls: [...common.urls, 'issueUrl', 'openPixelUrl'],
    unsubscribe: 'required',
    locales: {
      ko: { subject: '[{{brandName}}] {{title}}', html: newsletterIssueKo },
      en: { subject: '[{{brandName}}] {{title}}', html: newsletterIssueEn },
    },
  },
  // Korean advertising law (정보통신망법 제50조 제7항, 제8항): notices about consent, not advertising
  // (no (광고) prefix, no unsubscribe link). Filled by src/korea/notices.ts and src/korea/reminders.ts.
  'consent-notice': {
    required: [...common.required, 'senderName', 'change', 'date'],
    urls: [...common.urls, 'manageUrl'],
    locales: {
      ko: {
        subject:
          '[{{senderName}}] 광고성 정보 {{#consented}}수신동의{{/consented}}{{#refused}}수신거부{{/refused}}{{#withdrawn}}수신동의 철회{{/withdrawn}} 처리 결과 안내',
        html: consentNoticeKo,
      },
      en: { subject: '[{{senderName}}] Your advertising email choice has been processed', html: consentNoticeEn },
    },
  },
  'consent-reminder': {
    required: [...common.required, 'senderName', 'consentedDate', 'keepUrl', 'withdrawUrl'],
    urls: [...common.urls, 'keepUrl', 'withdrawUrl'],
    locales: {
      ko: { subject: '[{{senderName}}] 광고성 정보 수신동의 여부 확인 안내', html: consentReminderKo },
      en: { subject: '[{{senderName}}] Please confirm your consent to advertising email', html: consentReminderEn },
    },
  },
}
