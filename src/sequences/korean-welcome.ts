// The built-in example: a three-step Korean welcome series (docs/sequences.md).
import { MailstreamError } from '../errors.js'
import { escapeHtml } from '../html.js'
import { defineSequence, delay, type SequenceDefinition, send } from './steps.js'

function isHttpUrl(value: unknown): boolean {
  try {
    return typeof value === 'string' && /^https?:$/.test(new URL(value).protocol)
  } catch {
    return false
  }
}

export interface KoreanWelcomeOptions {
  /** The sequence id. Default `welcome-ko`. */
  id?: string
  /** Raise it when you change the options of a running series. Default 1. */
  version?: number
  /** The 'best of' issue: its title and Markdown body (the built-in `newsletter-issue` template). */
  bestOf: { title: string; body: string; issueUrl?: string }
  /** Where the feedback email's link goes. */
  feedbackUrl: string
  /** The brand, shown in the subjects. */
  brandName: string
}

/**
 * Welcome now (built-in `welcome`), a 'best of' issue after 3 days (built-in `newsletter-issue`),
 * and a feedback request 4 days later, day 7 (inline Korean HTML and text). A reader who
 * unsubscribed is on the suppression list by then, and the series ends without it; so does the
 * goal event `unsubscribed`, for an app that keeps its own list.
 */
export function koreanWelcomeSeries(options: KoreanWelcomeOptions): SequenceDefinition {
  const { brandName, feedbackUrl, bestOf } = options
  if (typeof brandName !== 'string' || brandName.trim() === '' || /[\r\n]/.test(brandName)) {
    throw new MailstreamError('E_CONFIG', 'brandName: must be a non-empty line of text', { field: 'brandName' })
  }
  if (!isHttpUrl(feedbackUrl)) {
    throw new MailstreamError('E_CONFIG', 'feedbackUrl: must be an http(s) URL', { field: 'feedbackUrl' })
  }
  if (
    typeof bestOf !== 'object' ||
    bestOf === null ||
    typeof bestOf.title !== 'string' ||
    typeof bestOf.body !== 'string'
  ) {
    throw new MailstreamError('E_CONFIG', 'bestOf: must be { title, body } (strings)', { field: 'bestOf' })
  }
  return defineSequence({
    id: options.id ?? 'welcome-ko',
    version: options.version ?? 1,
    goals: ['unsubscribed'],
    steps: [
      send('welcome', { id: 'welcome', data: { brandName } }),
      delay('3d'),
      send('newsletter-issue', {
        id: 'best-of',
        data: { brandName, ...bestOf },
      }),
      delay('4d'),
      send(undefined, {
        id: 'feedback',
        job: (context) => {
          const who = context.name ? `${context.name}님` : '구독자님'
          return {
            subject: `[${brandName}] 일주일 동안 어떠셨나요?`,
            text: `${who}, ${brandName}와 함께한 일주일은 어떠셨나요?\n1분이면 끝나는 설문으로 의견을 들려주세요: ${feedbackUrl}\n`,
            html: `<p>${escapeHtml(who)}, ${escapeHtml(brandName)}와 함께한 일주일은 어떠셨나요?</p><p><a href="${escapeHtml(feedbackUrl)}">1분 설문으로 의견 들려주기</a></p>`,
          }
        },
      }),
    ],
  })
}
