--[[ finish: record the outcome of many sends in one call.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
KEYS[4] delayed zset
KEYS[5] dead stream
KEYS[4 + 2i] status hash of job i; KEYS[5 + 2i] its batch hash (its status key again when none)
ARGV[1] consumer group
ARGV[2] now, epoch ms
ARGV[3] TTL of a final status, seconds
ARGV[4 + 7(i-1) ..] per job: outcome, streamIndex, entryId, jobId, attempts, arg1, arg2
  sent:       arg1 = provider message id
  retry:      arg1 = due time (ms), arg2 = error       (a transient failure, attempt used)
  throttle:   arg1 = due time (ms), arg2 = error       (rate exceeded, attempt not used)
  dead:       arg1 = error
  suppressed: arg1 = reason
Each outcome is applied only while the job's status hash still names this entry; otherwise
the entry is only acknowledged (another delivery of the same job got there first).
Reply: per job { applied (1/0), total, sent, failed, suppressed, cancelled } (counters of its
batch, zeros when none).
]]
local group = ARGV[1]
local now = ARGV[2]
local ttl = ARGV[3]
local out = {}
local final = { sent = true, dead = true, cancelled = true, suppressed = true }

local i = 0
for a = 4, #ARGV, 7 do
  i = i + 1
  local outcome = ARGV[a]
  local stream = KEYS[tonumber(ARGV[a + 1])]
  local entryId = ARGV[a + 2]
  local jobId = ARGV[a + 3]
  local attempts = ARGV[a + 4]
  local arg1 = ARGV[a + 5]
  local arg2 = ARGV[a + 6]
  local statusKey = KEYS[4 + 2 * i]
  local batchKey = KEYS[5 + 2 * i]
  local hasBatch = batchKey ~= statusKey

  redis.call('XACK', stream, group, entryId)
  redis.call('XDEL', stream, entryId)
  local state = redis.call('HMGET', statusKey, 'status', 'entry')
  local applied = 0
  if state[1] and not final[state[1]] and state[2] == entryId then
    applied = 1
    if outcome == 'sent' then
      redis.call('HSET', statusKey, 'status', 'sent', 'messageId', arg1, 'attempts', attempts,
        'updatedAt', now, 'sentAt', now)
      redis.call('HDEL', statusKey, 'job', 'entry', 'error', 'dueAt')
      redis.call('EXPIRE', statusKey, ttl)
      if hasBatch then redis.call('HINCRBY', batchKey, 'sent', 1) end
    elseif outcome == 'retry' or outcome == 'throttle' then
      redis.call('ZADD', KEYS[4], arg1, jobId)
      redis.call('HSET', statusKey, 'status', outcome == 'retry' and 'retrying' or 'throttled',
        'attempts', attempts, 'error', arg2, 'dueAt', arg1, 'updatedAt', now)
      redis.call('HDEL', statusKey, 'entry')
    elseif outcome == 'dead' then
      local payload = redis.call('HGET', statusKey, 'job') or ''
      redis.call('XADD', KEYS[5], '*', 'id', jobId, 'job', payload, 'error', arg1, 'attempts', attempts,
        'time', now)
      redis.call('HSET', statusKey, 'status', 'dead', 'error', arg1, 'attempts', attempts, 'updatedAt', now)
      redis.call('HDEL', statusKey, 'job', 'entry', 'dueAt')
      redis.call('EXPIRE', statusKey, ttl)
      if hasBatch then redis.call('HINCRBY', batchKey, 'failed', 1) end
    elseif outcome == 'suppressed' then
      redis.call('HSET', statusKey, 'status', 'suppressed', 'error', arg1, 'updatedAt', now)
      redis.call('HDEL', statusKey, 'job', 'entry', 'dueAt')
      redis.call('EXPIRE', statusKey, ttl)
      if hasBatch then redis.call('HINCRBY', batchKey, 'suppressed', 1) end
    end
  end
  if hasBatch then
    local c = redis.call('HMGET', batchKey, 'total', 'sent', 'failed', 'suppressed', 'cancelled')
    out[i] = { applied, tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0,
      tonumber(c[5]) or 0 }
  else
    out[i] = { applied, 0, 0, 0, 0, 0 }
  end
end
return out
