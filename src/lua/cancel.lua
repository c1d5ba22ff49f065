--[[ cancel: stop a job that has not started sending.
KEYS[1] status hash
KEYS[2] delayed zset
KEYS[3] KEYS[4] KEYS[5] send streams high, normal, low
KEYS[6] batch hash of the job (its status key again when none)
ARGV[1] job id
ARGV[2] now, epoch ms
ARGV[3] TTL of a final status, seconds
ARGV[4] the batch id the caller read for this job ('' for none)
ARGV[5] consumer group
ARGV[6] progress channel of the batch ('' for none)
Reply: { status before, cancelled (1/0) }. Queued, scheduled, retrying and throttled jobs can
be cancelled; final ones cannot. Status before is '' for an unknown job, 'active' for a queued
job already delivered to a worker (too late to cancel), and 'moved' when the job's batch is not
ARGV[4] (the caller reads it again): each with 0.
]]
local state = redis.call('HMGET', KEYS[1], 'status', 'priority', 'entry', 'batch')
local status = state[1]
if not status then return { '', 0 } end
if (state[4] or '') ~= ARGV[4] then return { 'moved', 0 } end
local index = { high = 3, normal = 4, low = 5 }
if status == 'queued' then
  if state[3] then
    local stream = KEYS[index[state[2]] or 4]
    -- Delivered to a worker already: it is being sent, too late to cancel.
    local pending = redis.pcall('XPENDING', stream, ARGV[5], state[3], state[3], 1)
    if type(pending) == 'table' and pending[1] then return { 'active', 0 } end
    redis.call('XDEL', stream, state[3])
  end
elseif status == 'scheduled' or status == 'retrying' or status == 'throttled' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  return { status, 0 }
end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'updatedAt', ARGV[2])
redis.call('HDEL', KEYS[1], 'job', 'entry', 'dueAt', 'rcpt')
redis.call('EXPIRE', KEYS[1], ARGV[3])
if KEYS[6] ~= KEYS[1] then
  redis.call('HINCRBY', KEYS[6], 'cancelled', 1)
  batch_progress(KEYS[6], ARGV[6], ARGV[4], ARGV[2])
end
return { status, 1 }
