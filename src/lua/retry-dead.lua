--[[ retry-dead: put one dead letter back into its send stream as a fresh job.
KEYS[1] dead stream
KEYS[2] status hash of the job
KEYS[3] send stream of the job's priority
KEYS[4] batch hash of the job (its status key again when none)
ARGV[1] dead entry id
ARGV[2] job id
ARGV[3] payload (JSON, read by the caller from the dead entry)
ARGV[4] priority
ARGV[5] type
ARGV[6] now, epoch ms
ARGV[7] max attempts
ARGV[8] batch id, or ''
ARGV[9] recipients, lower-cased and joined by ','
Reply: 1 when the letter was moved, 0 when it was already gone (retried or purged meanwhile).
]]
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local entry = redis.call('XADD', KEYS[3], '*', 'id', ARGV[2], 'job', ARGV[3], 'r', ARGV[9])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'status', 'queued', 'priority', ARGV[4], 'type', ARGV[5], 'attempts', 0,
  'maxAttempts', ARGV[7], 'createdAt', ARGV[6], 'updatedAt', ARGV[6], 'entry', entry)
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[2], 'batch', ARGV[8])
  if KEYS[4] ~= KEYS[2] then
    -- The batch is not done any more: it finishes again when this job does.
    redis.call('HINCRBY', KEYS[4], 'failed', -1)
    redis.call('HDEL', KEYS[4], 'finishedAt')
    -- (progress restarts from here; its last published values stay as they were)
  end
end
return 1
