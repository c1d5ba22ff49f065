/**
 * The Korean welcome series (mailstream/sequences): a confirmed subscriber gets the welcome email
 * now, the 'best of' issue on day 3 and a feedback request on day 7. Its first step is the welcome
 * email, so the confirmation route enrols instead of sending a separate welcome job.
 */
import type { EmailQueue } from 'mailstream'
import { createSequences, koreanWelcomeSeries, type Sequences, type SequencesOptions } from 'mailstream/sequences'
import type { Config } from '../shared/config.js'
import type { WelcomeSeries } from '../shared/routes.js'

export const WELCOME_SERIES_ID = 'welcome-ko'

/** What a test may set on the runner: a fake clock, a shorter interval. */
export type WelcomeSeriesOverrides = Partial<Pick<SequencesOptions, 'now' | 'intervalMs' | 'calendar'>>

export function createWelcomeSeries(
  config: Config,
  queue: EmailQueue,
  log: (line: string) => void,
  overrides: WelcomeSeriesOverrides = {},
): { sequences: Sequences; series: WelcomeSeries } {
  // The example serves no feedback form: point feedbackUrl at yours.
  const definition = koreanWelcomeSeries({
    id: WELCOME_SERIES_ID,
    brandName: config.brandName,
    feedbackUrl: `${config.publicUrl}/feedback`,
    bestOf: {
      title: '이번 주 베스트',
      body: '구독자들이 가장 많이 읽은 글을 모았습니다. 처음 오셨다면 여기서 시작해 보세요.',
    },
  })
  const sequences = createSequences({
    queue,
    sequences: [definition],
    onError: (error) => log(`sequences: ${error.message}`),
    ...overrides,
  })
  const series: WelcomeSeries = {
    async enroll(subscriber, { restart }) {
      const contact = {
        address: subscriber.email,
        ...(subscriber.name !== undefined && { name: subscriber.name }),
        ...(subscriber.locale !== undefined && { locale: subscriber.locale }),
      }
      return sequences.enroll(WELCOME_SERIES_ID, contact, {}, { restart })
    },
    async unsubscribed(email) {
      await sequences.signal(email, 'unsubscribed')
    },
  }
  return { sequences, series }
}
