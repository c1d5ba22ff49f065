--[[ finish: record the outcome of many sends in one call.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
KEYS[4] delayed zset
KEYS[5] dead stream
KEYS[6] stats hash (totals: sent, failed, suppressed, retried, throttled)
KEYS[7] metrics hash (histogram counters)
KEYS[7 + i] status hash of job i (i = 1..ARGV[4])
KEYS[7 + ARGV[4] + b] batch hash b, for jobs that belong to a batch
ARGV[1] consumer group
ARGV[2] now, epoch ms
ARGV[3] TTL of a final status, seconds
ARGV[4] number of jobs
ARGV[5] number of batches
then per job, from ARGV[6]: outcome, streamIndex, entryId, jobId, attempts, batch (its
index b among the batch keys, 0 for none), and by outcome:
  sent:       messageId
  suppressed: reason
  dead:       error, payload
  retry:      due time (ms), error, payload, recipients, throttles   (a transient failure; attempt used)
  throttle:   due time (ms), error, payload, recipients, throttles   (rate exceeded; attempt not used)
  (throttles: the job's throttles in a row after this outcome, kept in its status hash, which
  promote copies into the entry it adds, as it does attempts)
then per batch b: batch id, progress channel
then to the end, pairs of metrics field and increment (the workers' histograms)
Every entry is acknowledged and deleted. An outcome is applied only while the job's status hash
still names this entry (otherwise another delivery of the same job got there first).
Batches touched by this call publish their progress (lib/batch), the final message included.
A sent job whose status hash names an A/B test variant (field 'variant') also counts in its batch
hash as 'ab:v<variant>:sent'.
Reply: per job 1 when applied, 0 when not.
]]
local group = ARGV[1]
local now = ARGV[2]
local ttl = ARGV[3]
local jobs = tonumber(ARGV[4])
local batches = tonumber(ARGV[5])
local counter = { sent = 'sent', dead = 'failed', suppressed = 'suppressed', retry = 'retried', throttle = 'throttled' }
local totals = {}
local out = {}
local done = { {}, {}, {} }
local counts = {}

local a = 6
for i = 1, jobs do
  local outcome, entryId, jobId, attempts = ARGV[a], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local batch = tonumber(ARGV[a + 5])
  local ids = done[tonumber(ARGV[a + 1])]
  ids[#ids + 1] = entryId
  local statusKey = KEYS[7 + i]
  -- A status hash names its stream entry only while the job is live (final states clear it).
  local applied = redis.call('HGET', statusKey, 'entry') == entryId
  if outcome == 'sent' then
    if applied then
      redis.call('HSET', statusKey, 'status', 'sent', 'messageId', ARGV[a + 6], 'attempts', attempts, 'sentAt', now,
        'updatedAt', now, 'entry', '')
      redis.call('EXPIRE', statusKey, ttl)
    end
    a = a + 7
  elseif outcome == 'suppressed' then
    if applied then
      redis.call('HSET', statusKey, 'status', 'suppressed', 'error', ARGV[a + 6], 'updatedAt', now, 'entry', '')
      redis.call('EXPIRE', statusKey, ttl)
    end
    a = a + 7
  elseif outcome == 'dead' then
    if applied then
      redis.call('XADD', KEYS[5], '*', 'id', jobId, 'job', ARGV[a + 7], 'error', ARGV[a + 6], 'attempts', attempts,
        'time', now)
      redis.call('HSET', statusKey, 'status', 'dead', 'error', ARGV[a + 6], 'attempts', attempts, 'updatedAt', now,
        'entry', '')
      redis.call('EXPIRE', statusKey, ttl)
    end
    a = a + 8
  else -- retry or throttle
    if applied then
      redis.call('ZADD', KEYS[4], ARGV[a + 6], jobId)
      redis.call('HSET', statusKey, 'status', outcome == 'retry' and 'retrying' or 'throttled', 'attempts', attempts,
        'dueAt', ARGV[a + 6], 'error', ARGV[a + 7], 'job', ARGV[a + 8], 'rcpt', ARGV[a + 9], 'throttles', ARGV[a + 10],
        'updatedAt', now, 'entry', '')
    end
    a = a + 11
  end
  if applied then totals[counter[outcome]] = (totals[counter[outcome]] or 0) + 1 end
  if applied and batch > 0 and (outcome == 'sent' or outcome == 'dead' or outcome == 'suppressed') then
    local c = counts[batch]
    if not c then
      c = {}
      counts[batch] = c
    end
    c[counter[outcome]] = (c[counter[outcome]] or 0) + 1
    if outcome == 'sent' then
      local variant = redis.call('HGET', statusKey, 'variant')
      if variant then
        local field = 'ab:v' .. variant .. ':sent'
        c[field] = (c[field] or 0) + 1
      end
    end
  end
  out[i] = applied and 1 or 0
end
for s = 1, 3 do
  local ids = done[s]
  if #ids > 0 then
    redis.call('XACK', KEYS[s], group, unpack(ids))
    redis.call('XDEL', KEYS[s], unpack(ids))
  end
end
for field, n in pairs(totals) do redis.call('HINCRBY', KEYS[6], field, n) end
for batch, c in pairs(counts) do
  for field, n in pairs(c) do redis.call('HINCRBY', KEYS[7 + jobs + batch], field, n) end
end
for b = 1, batches do
  local p = a + 2 * (b - 1)
  batch_progress(KEYS[7 + jobs + b], ARGV[p + 1], ARGV[p], now)
end
for m = a + 2 * batches, #ARGV, 2 do redis.call('HINCRBY', KEYS[7], ARGV[m], ARGV[m + 1]) end
return out
