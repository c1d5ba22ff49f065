--[[ activate: take fetched or reclaimed entries into work, after checking each job's state.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
KEYS[4] dead stream
KEYS[5] suppression hash (address -> reason)
KEYS[5 + i] status hash of the i-th entry's job
ARGV[1] consumer group
ARGV[2] now, epoch ms
ARGV[3] max deliveries of one entry
ARGV[4 + 4(i-1) .. 7 + 4(i-1)] per entry: streamIndex, entryId, jobId, deliveries
Reply: per entry { verdict, attempts, payload, suppressed }:
  'send'   the job is now active: send it, leaving out the suppressed addresses
           (a list, empty unless the suppression hash names some of its recipients)
  'over'   delivered more than max deliveries times: the caller dead-letters it
  'skip'   the job is final, cancelled or has moved on: acknowledged and deleted here
  'poison' no job behind the entry: moved to the dead stream here
]]
local group = ARGV[1]
local now = ARGV[2]
local maxDeliveries = tonumber(ARGV[3])
local final = { sent = true, dead = true, cancelled = true, suppressed = true }
local checkSuppression = redis.call('HLEN', KEYS[5]) > 0
local out = {}

local function drop(stream, entryId)
  redis.call('XACK', stream, group, entryId)
  redis.call('XDEL', stream, entryId)
end

local i = 0
for a = 4, #ARGV, 4 do
  i = i + 1
  local stream = KEYS[tonumber(ARGV[a])]
  local entryId = ARGV[a + 1]
  local jobId = ARGV[a + 2]
  local deliveries = tonumber(ARGV[a + 3])
  local statusKey = KEYS[5 + i]
  local state = { false, false, false, false, false }
  if jobId ~= '' then
    state = redis.call('HMGET', statusKey, 'status', 'entry', 'attempts', 'job', 'rcpt')
  end
  local status, entry, attempts, payload = state[1], state[2], state[3], state[4]
  if status and (final[status] or entry ~= entryId) then
    drop(stream, entryId)
    out[i] = { 'skip', 0, '', {} }
  elseif not status or not payload then
    drop(stream, entryId)
    redis.call('XADD', KEYS[4], '*', 'id', jobId, 'error', 'stream entry ' .. entryId .. ' has no job data',
      'attempts', attempts or 0, 'time', now)
    if status then
      redis.call('HSET', statusKey, 'status', 'dead', 'error', 'job data missing', 'updatedAt', now)
    end
    out[i] = { 'poison', 0, '', {} }
  elseif deliveries > maxDeliveries then
    out[i] = { 'over', tonumber(attempts) or 0, payload, {} }
  else
    local suppressed = {}
    if checkSuppression and state[5] then
      for address in string.gmatch(state[5], '[^,]+') do
        if redis.call('HEXISTS', KEYS[5], address) == 1 then suppressed[#suppressed + 1] = address end
      end
    end
    redis.call('HSET', statusKey, 'status', 'active', 'updatedAt', now)
    out[i] = { 'send', tonumber(attempts) or 0, payload, suppressed }
  end
end
return out
