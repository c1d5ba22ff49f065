--[[ enqueue: add jobs, each either to its send stream or to the delayed set. Many jobs per call.
KEYS[1] delayed zset
KEYS[2] KEYS[3] KEYS[4] send streams high, normal, low
per job i (3 keys from KEYS[5 + 3(i-1)]): status hash, idempotency key (the status key again
  when none), batch hash (the status key again when none)
ARGV[1] now, epoch ms
ARGV[2] idempotency TTL, seconds
per job i (9 values from ARGV[3 + 9(i-1)]): id, payload (JSON), due time in ms (0 = now),
  priority, type, max attempts, batch id or '', recipients (lower-case, ',' joined),
  '1' when the job has an idempotency key
Reply: flat list { id, status, created, ... } per job. created is 1 for a new job and 0 when the
id or the idempotency key already names a job (status is '' when only the key was found).
]]
local now = ARGV[1]
local stream = { high = KEYS[2], normal = KEYS[3], low = KEYS[4] }
local out = {}
local job = 0
for a = 3, #ARGV, 9 do
  local k = 5 + 3 * job
  job = job + 1
  local statusKey, idemKey, batchKey = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local id, payload, due, priority = ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2]), ARGV[a + 3]
  local existing = false
  if ARGV[a + 8] == '1' then existing = redis.call('GET', idemKey) end
  local current = false
  if not existing then current = redis.call('HGET', statusKey, 'status') end
  if existing then
    out[#out + 1] = existing; out[#out + 1] = ''; out[#out + 1] = 0
  elseif current then
    out[#out + 1] = id; out[#out + 1] = current; out[#out + 1] = 0
  else
    local status
    if due > 0 then
      status = 'scheduled'
      redis.call('ZADD', KEYS[1], due, id)
      redis.call('HSET', statusKey, 'status', status, 'priority', priority, 'type', ARGV[a + 4],
        'maxAttempts', ARGV[a + 5], 'createdAt', now, 'dueAt', due, 'job', payload, 'rcpt', ARGV[a + 7])
    else
      status = 'queued'
      local entry = redis.call('XADD', stream[priority], '*', 'id', id, 'job', payload, 'r', ARGV[a + 7])
      redis.call('HSET', statusKey, 'status', status, 'priority', priority, 'type', ARGV[a + 4],
        'maxAttempts', ARGV[a + 5], 'createdAt', now, 'entry', entry)
    end
    if ARGV[a + 6] ~= '' then
      redis.call('HSET', statusKey, 'batch', ARGV[a + 6])
      redis.call('HINCRBY', batchKey, 'total', 1)
    end
    if ARGV[a + 8] == '1' then redis.call('SET', idemKey, id, 'EX', ARGV[2]) end
    out[#out + 1] = id; out[#out + 1] = status; out[#out + 1] = 1
  end
end
return out
