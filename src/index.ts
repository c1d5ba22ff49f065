export type { AbDecision, AbDecisionReason, AbMetric } from './ab-test/decision.js'
export type { BatchTestOptions, BatchVariant } from './ab-test/options.js'
export type { AbTestState, AbVariantState, RunAbTestResult } from './ab-test/state.js'
export { type Calendar, createQuietHours, createSendingCalendar, nextLocalTime, type WeeklyHours } from './calendar.js'
export type { DeliverAt } from './deliver-at.js'
export {
  type ErrorCode,
  isMailstreamError,
  MailstreamError,
  RateLimitError,
  type RetryClass,
  TransportError,
} from './errors.js'
export {
  type Address,
  type AddressInput,
  type Attachment,
  type AttachmentInput,
  BUILT_IN_TYPES,
  type BuiltInType,
  type EmailJob,
  type EmailJobInput,
  formatAddress,
  PRIORITIES,
  type Priority,
  parseAddress,
} from './job.js'
export { type AdvertisingFooterCheck, checkAdvertisingFooter, type FooterItem } from './korea/footer.js'
export {
  type ConsentAction,
  type ConsentActionTokenResult,
  consentActionUrl,
  createConsentActionToken,
  verifyConsentActionToken,
} from './korea/links.js'
export { CONSENT_NOTICE_TEMPLATE, type ConsentNoticeInput, sendConsentNotice } from './korea/notices.js'
export type { AdvertisingQueueOptions, AdvertisingWorkerOptions, ConsentLookup } from './korea/options.js'
export {
  CONSENT_REMINDER_TEMPLATE,
  type ConsentReminderLinks,
  type ConsentReminderOptions,
  type ConsentReminderResult,
  type ConsentStore,
  type ConsentsDueOptions,
  consentsDue,
  type DueConsent,
  type InvalidConsent,
  type ListConsentsOptions,
  type ReminderSchedule,
  reminderSchedule,
  runConsentReminders,
} from './korea/reminders.js'
export {
  ADVERTISING_MARK,
  type AdvertisingMark,
  type AdvertisingSubject,
  advertisingSubject,
  findAdvertisingMark,
  ordinarySubjectProblem,
} from './korea/subject.js'
export { transactionExceptionEnds, withinTransactionException } from './korea/transaction.js'
export type { AdvertisingConsent, AdvertisingSender, ConsentChange } from './korea/types.js'
export {
  type BuiltInProvider,
  PROVIDER_DOMAINS,
  PROVIDERS,
  providerOfAddress,
  providerOfDomain,
} from './providers/classify.js'
export type { MxOptions, ResolveMx } from './providers/mx.js'
export { WARMUP_SCHEDULES, type WarmupScheduleName } from './providers/warmup.js'
export type { BatchProgress, BatchState, ProgressSubscription } from './queue/batches.js'
export {
  type BatchOptions,
  type BatchRecipient,
  type BuildRecipient,
  batchJobId,
  type EnqueueBatchResult,
} from './queue/enqueue-batch.js'
export {
  createEmailQueue,
  type DeadLetter,
  type EmailQueue,
  type EmailQueueOptions,
  type EnqueueResult,
  type QueueStats,
  type StreamStats,
  type SuppressionEntry,
} from './queue/index.js'
export {
  type BatchProgressStream,
  type BatchProgressStreamOptions,
  batchProgressStream,
  EVENT_STREAM_HEADERS,
  type WatchesBatches,
} from './queue/progress-stream.js'
export type { SendingHours } from './queue/schedule.js'
export type { BatchStats, BatchTotals, DeliveryRates, DeliveryTotals } from './queue/stats.js'
export type { WatchBatchOptions } from './queue/watch.js'
export {
  type ConsumeOptions,
  createRateLimiter,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimitResult,
} from './rate-limiter.js'
export type { RedisClient, RedisInput } from './redis.js'
export type { JobDelivery, JobState, JobStatusName } from './status.js'
export {
  BUILTIN_TEMPLATE_NAMES,
  type BuiltInTemplateName,
} from './templates/builtin/index.js'
export {
  createTemplateRenderer,
  type RenderedTemplate,
  type TemplateDefaults,
  type TemplateDefinition,
  type TemplateRenderer,
  type TemplateRendererOptions,
  type TemplateSource,
  type UnsubscribeOptions,
} from './templates/renderer.js'
export {
  createUnsubscribeToken,
  listUnsubscribeHeaders,
  type UnsubscribeSecret,
  type UnsubscribeTokenInput,
  type UnsubscribeTokenResult,
  type VerifyUnsubscribeTokenOptions,
  verifyUnsubscribeToken,
} from './templates/unsubscribe.js'
export type {
  EmailMessage,
  RenderContext,
  RenderedEmail,
  SendContext,
  SendResult,
  TemplateRendererLike,
  Transport,
} from './transport.js'
export {
  createVerificationCodes,
  type IssueOptions,
  type IssueResult,
  type VerificationCodes,
  type VerificationCodesOptions,
  type VerificationContext,
  type VerificationLimit,
  type VerifyResult,
} from './verification.js'
export {
  createSesWebhookHandler,
  type SesEvent,
  type SesEventType,
  type SesWebhookHandler,
  type SesWebhookOptions,
  type SesWebhookOutcome,
  type SesWebhookRequest,
  type SesWebhookResponse,
  type SnsSubscriptionMessage,
} from './webhooks/ses.js'
export { type FetchCertificate, isSnsUrl, type SnsMessage, type SnsMessageType } from './webhooks/sns.js'
export {
  createEmailWorker,
  type DeadEvent,
  type EmailWorker,
  type EmailWorkerOptions,
  type FailedEvent,
  type RetryingEvent,
  type SentEvent,
  type SuppressedEvent,
  type WorkerEventName,
  type WorkerEvents,
  type WorkerHealth,
} from './worker/index.js'
export type {
  PaceEvent,
  ProviderPaceEvent,
  ProviderRate,
  WorkerDailyQuota,
  WorkerProviderPacing,
  WorkerProviderRates,
  WorkerRateLimit,
} from './worker/pacing.js'
