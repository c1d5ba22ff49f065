--[[ ses-event: apply one SES event (delivered by SNS) to a queue's counters, once.
KEYS[1] dedupe key of the SNS message (P:sns:<MessageId>)
KEYS[2] stats hash (totals)
KEYS[3] suppression hash (address -> JSON {reason, at})
KEYS[4] tracking hash of the SES message (P:ses:<messageId>): which counters it has counted, when
KEYS[5] status hash of the job (KEYS[1] again when the event names no job)
KEYS[6] batch hash of the job (KEYS[1] again when none)
ARGV[1] TTL of the dedupe key, seconds
ARGV[2] TTL of the tracking hash, seconds (renewed by every event of the message that has a counter:
        all kinds but send)
ARGV[3] value of the dedupe key: 'hook' while the host's onEvent has not run, else 'done'
ARGV[4] event kind: send, delivery, bounce, complaint, reject, open, click, renderingFailure, deliveryDelay
ARGV[5] bounce type (Permanent, Transient, Undetermined) or ''
ARGV[6] time of the event, epoch ms
ARGV[7] for an open: 'human' or 'machine' (see ab-test/machine.ts); else ''
ARGV[8..] pairs: address (lower-case), suppression entry (JSON), for addresses to suppress
Counters (stats hash, and batch hash when it exists) count SES messages, not events: each
counter at most once per message, as recorded in the tracking hash. The job's status hash is
updated only while it exists (it expires 24 h after the send); `status` stays the send status and
`delivery` holds the furthest delivery state: delayed < delivered < bounced/rejected/failed < complained.
A/B tests: when the status hash names a variant (field 'variant') and the batch hash exists, a
click, or an open by a human, counts once per message in the batch hash as 'ab:v<variant>:clicked'
or 'ab:v<variant>:opened' (the tracking hash remembers 'abClicked' / 'abOpened').
Reply: { 'new', counted (','-joined counter names), addresses newly suppressed, status updated (1/0) }
or { 'duplicate', the dedupe key's value } when this SNS message was applied before.
]]
local previous = redis.call('GET', KEYS[1])
if previous then return { 'duplicate', previous } end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])

local kind, bounceType, at = ARGV[4], ARGV[5], ARGV[6]
local fields = {
  delivery = { 'delivered' }, bounce = { 'bounced' }, complaint = { 'complained' }, reject = { 'rejected' },
  open = { 'opened' }, click = { 'clicked' }, renderingFailure = { 'renderingFailed' },
  deliveryDelay = { 'deliveryDelayed' }, send = {},
}
local names = fields[kind] or {}
if kind == 'bounce' and bounceType == 'Permanent' then names[#names + 1] = 'bouncedPermanent' end

local hasBatch = KEYS[6] ~= KEYS[1] and redis.call('EXISTS', KEYS[6]) == 1
local counted = {}
for _, name in ipairs(names) do
  if redis.call('HSETNX', KEYS[4], name, at) == 1 then
    counted[#counted + 1] = name
    redis.call('HINCRBY', KEYS[2], name, 1)
    if hasBatch then redis.call('HINCRBY', KEYS[6], name, 1) end
  end
end
if #names > 0 then redis.call('EXPIRE', KEYS[4], ARGV[2]) end

local updated = 0
if KEYS[5] ~= KEYS[1] and redis.call('EXISTS', KEYS[5]) == 1 then
  updated = 1
  local states = {
    deliveryDelay = 'delayed', delivery = 'delivered', bounce = 'bounced', reject = 'rejected',
    renderingFailure = 'failed', complaint = 'complained',
  }
  local rank = { delayed = 1, delivered = 2, bounced = 3, rejected = 3, failed = 3, complained = 4 }
  local state = states[kind]
  if state then
    local current = redis.call('HGET', KEYS[5], 'delivery')
    if not current or (rank[current] or 0) < rank[state] then redis.call('HSET', KEYS[5], 'delivery', state) end
  end
  if kind == 'delivery' then
    redis.call('HSETNX', KEYS[5], 'deliveredAt', at)
  elseif kind == 'bounce' then
    redis.call('HSETNX', KEYS[5], 'bouncedAt', at)
    if bounceType == 'Permanent' or redis.call('HEXISTS', KEYS[5], 'bounceType') == 0 then
      redis.call('HSET', KEYS[5], 'bounceType', bounceType)
    end
  elseif kind == 'complaint' then
    redis.call('HSETNX', KEYS[5], 'complainedAt', at)
  elseif kind == 'open' then
    redis.call('HINCRBY', KEYS[5], 'opens', 1)
    redis.call('HSETNX', KEYS[5], 'openedAt', at)
  elseif kind == 'click' then
    redis.call('HINCRBY', KEYS[5], 'clicks', 1)
    redis.call('HSETNX', KEYS[5], 'clickedAt', at)
  end
  local variant = (kind == 'click' or (kind == 'open' and ARGV[7] == 'human')) and hasBatch
    and redis.call('HGET', KEYS[5], 'variant')
  if variant then
    local metric = kind == 'open' and 'opened' or 'clicked'
    if redis.call('HSETNX', KEYS[4], kind == 'open' and 'abOpened' or 'abClicked', at) == 1 then
      redis.call('HINCRBY', KEYS[6], 'ab:v' .. variant .. ':' .. metric, 1)
      redis.call('EXPIRE', KEYS[4], ARGV[2])
    end
  end
end

local suppressed = 0
for a = 8, #ARGV, 2 do
  suppressed = suppressed + redis.call('HSETNX', KEYS[3], ARGV[a], ARGV[a + 1])
end
return { 'new', table.concat(counted, ','), suppressed, updated }
