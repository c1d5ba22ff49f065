--[[ enqueue: add one job, either to its send stream or to the delayed set.
KEYS[1] send stream of the job's priority
KEYS[2] delayed zset
KEYS[3] status hash of the job
KEYS[4] idempotency key (read and written only when ARGV[7] == '1')
KEYS[5] batch hash (written only when ARGV[8] ~= '')
ARGV[1] job id
ARGV[2] payload (JSON)
ARGV[3] due time, epoch ms (0 = now)
ARGV[4] now, epoch ms
ARGV[5] priority
ARGV[6] type
ARGV[7] '1' when the job has an idempotency key
ARGV[8] batch id, or ''
ARGV[9] idempotency TTL, seconds
ARGV[10] max attempts
ARGV[11] recipients (to, cc, bcc), lower-cased and joined by ',' (for the suppression check)
Reply: { id, status, created } where created is 1 for a new job and 0 when the id or the
idempotency key already names a job (status is '' when only the key was found).
]]
if ARGV[7] == '1' then
  local existing = redis.call('GET', KEYS[4])
  if existing then
    return { existing, '', 0 }
  end
end
local current = redis.call('HGET', KEYS[3], 'status')
if current then
  return { ARGV[1], current, 0 }
end

local status
local now = ARGV[4]
if tonumber(ARGV[3]) > 0 then
  status = 'scheduled'
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
  redis.call('HSET', KEYS[3], 'status', status, 'job', ARGV[2], 'priority', ARGV[5], 'type', ARGV[6],
    'attempts', 0, 'maxAttempts', ARGV[10], 'rcpt', ARGV[11], 'createdAt', now, 'updatedAt', now, 'dueAt', ARGV[3])
else
  status = 'queued'
  local entry = redis.call('XADD', KEYS[1], '*', 'id', ARGV[1])
  redis.call('HSET', KEYS[3], 'status', status, 'job', ARGV[2], 'priority', ARGV[5], 'type', ARGV[6],
    'attempts', 0, 'maxAttempts', ARGV[10], 'rcpt', ARGV[11], 'createdAt', now, 'updatedAt', now, 'entry', entry)
end
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[3], 'batch', ARGV[8])
  redis.call('HINCRBY', KEYS[5], 'total', 1)
end
if ARGV[7] == '1' then
  redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[9])
end
return { ARGV[1], status, 1 }
