--[[ quota: a rolling-window quota (a daily sending quota) counted exactly, in one hash.
Units are added to time buckets of ARGV[3] ms. A bucket leaves the window once its end is a full
window old, so a unit counts for at most one bucket longer than the window: the quota is never
exceeded, and room comes back at most one bucket late. Non-empty buckets form a linked list, so
expiring them costs one step per bucket that held units, however long the pause between calls.
KEYS[1] quota hash: t units in the window, o oldest bucket, n newest bucket,
        <bucket> units of that bucket, x<bucket> the next non-empty bucket
ARGV[1] max units in the window
ARGV[2] window, ms
ARGV[3] bucket width, ms
ARGV[4] cost: units to add (0 only looks)
Reply: { allowed (1/0), remaining, retryAfterMs, used }
  A cost that does not fit is refused and nothing is added; a cost above max is allowed only into
  an empty window. retryAfterMs says when the refused cost would fit (for cost 0: when one unit is
  free; 0 when there is room).
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local width = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local key = KEYS[1]
local current = math.floor(now / width)
local firstLive = math.floor((now - window) / width)

local state = redis.call('HMGET', key, 't', 'o', 'n')
local total = tonumber(state[1]) or 0
local oldest = tonumber(state[2])
local newest = tonumber(state[3])
local dropped = false
while oldest and oldest < firstLive do
  total = total - (tonumber(redis.call('HGET', key, tostring(oldest))) or 0)
  local nextBucket = redis.call('HGET', key, 'x' .. oldest)
  redis.call('HDEL', key, tostring(oldest), 'x' .. oldest)
  oldest = tonumber(nextBucket)
  dropped = true
end
if not oldest then
  if dropped then redis.call('DEL', key) end
  total = 0
  newest = nil
elseif dropped then
  redis.call('HSET', key, 't', total, 'o', oldest)
end

local fits = total + cost <= max or total == 0
if cost > 0 and fits then
  if newest and newest >= current then
    -- Same bucket (or a clock that stepped back): count it in the newest bucket, never earlier.
    redis.call('HINCRBY', key, tostring(newest), cost)
  else
    redis.call('HSET', key, tostring(current), cost, 'n', current)
    if newest then
      redis.call('HSET', key, 'x' .. newest, current)
    else
      redis.call('HSET', key, 'o', current)
    end
    newest = current
  end
  total = total + cost
  redis.call('HSET', key, 't', total)
  redis.call('PEXPIRE', key, math.ceil((newest + 1) * width + window - now))
end

local retryAfter = 0
local want = cost > 0 and cost or 1
if (cost > 0 and not fits) or (cost == 0 and total + 1 > max) then
  -- Walk the buckets from the oldest until enough units will have left.
  local need = want > max and total or (total + want - max)
  local freed = 0
  local bucket = oldest
  while bucket do
    freed = freed + (tonumber(redis.call('HGET', key, tostring(bucket))) or 0)
    if freed >= need then break end
    bucket = tonumber(redis.call('HGET', key, 'x' .. bucket))
  end
  if bucket then retryAfter = math.ceil((bucket + 1) * width + window - now) end
  if retryAfter < 1 then retryAfter = 1 end
end
local remaining = max - total
if remaining < 0 then remaining = 0 end
return { (cost == 0 or fits) and 1 or 0, remaining, retryAfter, total }
