--[[ activate: check entries that were delivered again (reclaimed from a stalled consumer,
recovered after a lost reply) or read by a blocking read, before they are sent.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
KEYS[4] dead stream
KEYS[5] suppression hash (address -> reason)
KEYS[5 + i] status hash of the i-th entry's job
ARGV[1] consumer group
ARGV[2] now, epoch ms
ARGV[3] max deliveries of one entry
per entry i (6 values from ARGV[4 + 6(i-1)]): streamIndex, entryId, jobId, deliveries,
  '1' when the entry carries a payload, recipients (lower-case, ',' joined)
Reply: per entry { verdict, attempts, suppressed, throttles } (attempts and throttles in a row as
the job's status records them):
  'send'   send it, leaving out the suppressed recipients (','-joined, '' for none)
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

local i = 0
for a = 4, #ARGV, 6 do
  i = i + 1
  local stream = KEYS[tonumber(ARGV[a])]
  local entryId = ARGV[a + 1]
  local jobId = ARGV[a + 2]
  local statusKey = KEYS[5 + i]
  local state = { false, false, false }
  if jobId ~= '' then
    state = redis.call('HMGET', statusKey, 'status', 'entry', 'attempts', 'throttles')
  end
  local status, entry, attempts = state[1], state[2], tonumber(state[3]) or 0
  local throttles = tonumber(state[4]) or 0
  if status and (final[status] or entry ~= entryId) then
    redis.call('XACK', stream, group, entryId)
    redis.call('XDEL', stream, entryId)
    out[i] = { 'skip', 0, '', 0 }
  elseif not status or ARGV[a + 4] ~= '1' then
    redis.call('XACK', stream, group, entryId)
    redis.call('XDEL', stream, entryId)
    redis.call('XADD', KEYS[4], '*', 'id', jobId, 'error', 'stream entry ' .. entryId .. ' has no job data',
      'attempts', attempts, 'time', now)
    if status then
      redis.call('HSET', statusKey, 'status', 'dead', 'error', 'job data missing', 'updatedAt', now, 'entry', '')
    end
    out[i] = { 'poison', 0, '', 0 }
  elseif tonumber(ARGV[a + 3]) > maxDeliveries then
    out[i] = { 'over', attempts, '', throttles }
  else
    local suppressed = ''
    if checkSuppression then
      for address in string.gmatch(ARGV[a + 5], '[^,]+') do
        if redis.call('HEXISTS', KEYS[5], address) == 1 then
          suppressed = suppressed == '' and address or (suppressed .. ',' .. address)
        end
      end
    end
    out[i] = { 'send', attempts, suppressed, throttles }
  end
end
return out
