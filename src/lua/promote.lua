--[[ promote: move due jobs from the delayed set to their send streams.
KEYS[1] delayed zset
KEYS[2] KEYS[3] KEYS[4] send streams high, normal, low
KEYS[5] dead stream
KEYS[5 + i] status hash of candidate i
ARGV[1] now, epoch ms
ARGV[1 + i] candidate job id i (read by the caller with ZRANGE BYSCORE; re-checked here)
The entry it adds carries the attempts used (`a`) and the throttles in a row (`t`) its status records.
Reply: how many jobs were moved. A due candidate whose job is final is only dropped from the set;
one with no status hash or no payload is dead-lettered (without its payload, with the attempts its
status records), and a status hash it has is marked dead.
]]
local now = tonumber(ARGV[1])
local index = { high = 2, normal = 3, low = 4 }
local final = { sent = true, dead = true, cancelled = true, suppressed = true }
local moved = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local statusKey = KEYS[4 + i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    redis.call('ZREM', KEYS[1], id)
    local state = redis.call('HMGET', statusKey, 'status', 'priority', 'job', 'attempts', 'rcpt', 'throttles')
    if state[1] and final[state[1]] then
      -- cancelled or finished meanwhile: nothing to send
    elseif not state[1] or not state[3] then
      redis.call('XADD', KEYS[5], '*', 'id', id, 'error', 'scheduled job has no data', 'attempts',
        state[4] or 0, 'time', ARGV[1])
      if state[1] then
        -- As activate does for an entry without data: the status says dead, not due.
        redis.call('HSET', statusKey, 'status', 'dead', 'error', 'job data missing', 'updatedAt', ARGV[1])
        redis.call('HDEL', statusKey, 'dueAt', 'rcpt')
      end
    else
      local entry = redis.call('XADD', KEYS[index[state[2]] or 3], '*', 'id', id, 'job', state[3],
        'a', state[4] or '0', 't', state[6] or '0', 'r', state[5] or '')
      redis.call('HSET', statusKey, 'status', 'queued', 'entry', entry, 'updatedAt', ARGV[1])
      redis.call('HDEL', statusKey, 'dueAt', 'job', 'rcpt')
      moved = moved + 1
    end
  end
end
return moved
