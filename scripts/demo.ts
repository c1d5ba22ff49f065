/**
 * npm run demo: the newsletter service in one run. A verification code and a newsletter issue to
 * 1,000 subscribers go through the queue and a worker into the preview transport.
 *
 * Uses REDIS_URL when set; otherwise starts a redis-server of its own on a free port (and stops
 * it at the end). Writes the emails to .mailstream-preview/ (index.html lists them).
 */
import { Redis } from 'ioredis'
import { createEmailQueue, createEmailWorker, createTemplateRenderer, createVerificationCodes } from 'mailstream'
import { createPreviewTransport } from 'mailstream/preview'
import { startRedisServer } from './lib/redis-server.js'

const SUBSCRIBERS = Number(process.env.DEMO_SUBSCRIBERS ?? 1000)
const names = ['김민준', '이서연', '박도윤', '최하은', 'Alex Kim', 'Jamie Park', '정지호', '강수아']

function progressBar(completed: number, total: number, width = 30): string {
  const ratio = total === 0 ? 0 : completed / total
  const filled = Math.round(ratio * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(ratio * 100)).padStart(3)}% ${completed}/${total}`
}

const embedded = process.env.REDIS_URL ? undefined : await startRedisServer()
const redisUrl = process.env.REDIS_URL ?? (embedded?.url as string)
console.log(embedded ? `Redis: started redis-server on ${redisUrl} for this run` : `Redis: ${redisUrl} (REDIS_URL)`)

const redis = new Redis(redisUrl)
const prefix = `demo-${Date.now().toString(36)}`
const queue = createEmailQueue({ redis, prefix })
const transport = createPreviewTransport({ dir: '.mailstream-preview' })
const templates = createTemplateRenderer({
  locale: 'ko',
  defaults: { brandName: 'Vality', brandColor: '#3b5bdb', frontendUrl: 'https://vality.example' },
  unsubscribe: { secret: 'demo-unsubscribe-secret-0123456789', mailto: 'unsubscribe@vality.example' },
})
const worker = createEmailWorker({
  redis,
  prefix,
  transport,
  templates,
  from: 'Vality <news@vality.example>',
  concurrency: 50,
})
worker.on('error', (error) => console.error(`worker: ${error.message}`))
await worker.start()

try {
  // 1. A verification code: what the sign-up form sends.
  const codes = createVerificationCodes({ queue, secret: 'demo-verification-secret-0123456789' })
  const issued = await codes.issue('reader@vality.example', { locale: 'ko' })
  console.log(`Verification code: job ${issued.id}, valid until ${new Date(issued.expiresAt).toISOString()}`)

  // 2. A newsletter issue to every subscriber, streamed in, with live progress.
  const batchId = `issue-12-${prefix}`
  let last = { completed: 0, total: SUBSCRIBERS }
  const progress = queue.onProgress(batchId, (message) => {
    last = message
    process.stdout.write(`\rNewsletter ${progressBar(message.completed, message.total)}`)
  })
  await progress.ready
  const finished = new Promise<void>((resolve) => {
    const done = queue.onProgress(batchId, (message) => {
      if (message.done) {
        done()
        resolve()
      }
    })
  })
  async function* subscribers() {
    for (let i = 0; i < SUBSCRIBERS; i++) {
      yield { email: `subscriber${i}@vality.example`, name: names[i % names.length] as string }
    }
  }
  const started = Date.now()
  const result = await queue.enqueueBatch(
    batchId,
    subscribers(),
    (subscriber) => ({ to: subscriber.email, data: { name: subscriber.name, email: subscriber.email } }),
    {
      template: 'newsletter-issue',
      data: {
        title: '이번 주 Vality: 좋은 습관을 만드는 세 가지 방법',
        body: '## 안녕하세요!\n\n이번 호에서는 **작은 습관**이 어떻게 큰 변화를 만드는지 살펴봅니다.\n\n1. 아침 10분 산책\n2. 하루 한 페이지 읽기\n3. 잠들기 전 감사 일기\n\n[전체 글 읽기](https://vality.example/issues/12)',
      },
    },
  )
  await finished
  progress()
  process.stdout.write(`\rNewsletter ${progressBar(last.total, last.total)}\n`)
  console.log(
    `Enqueued ${result.enqueued} newsletter jobs; all sent in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  )

  const stats = await queue.stats()
  console.log('\nStats')
  console.log(`  sent        ${stats.totals.sent}`)
  console.log(`  failed      ${stats.totals.failed}`)
  console.log(`  retried     ${stats.totals.retried}`)
  console.log(`  dead        ${stats.dead}`)
  console.log(`  waiting     ${Object.values(stats.streams).reduce((sum, stream) => sum + stream.waiting, 0)}`)
  console.log(`\nPreview: open ${transport.indexPath} in a browser to read the ${stats.totals.sent} emails.`)
} finally {
  await worker.stop()
  await queue.close()
  await redis.quit()
  if (embedded) {
    await embedded.stop()
    embedded.cleanup()
  }
}
