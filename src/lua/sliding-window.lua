--[[ sliding-window: at most ARGV[1] events in any window of ARGV[2] ms, counted exactly.
Each allowed event is one member of a sorted set scored by server time (TIME); members older than
the window are dropped on every call, so the set never holds more than max members.
KEYS[1] event log (zset: member -> epoch ms)
ARGV[1] max events in the window
ARGV[2] window, ms
ARGV[3] member naming this event (unique; the caller removes it again with ZREM to undo)
Reply: { allowed (1/0), remaining, retryAfterMs }: when refused, nothing is added and
retryAfterMs says when the oldest event leaves the window.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.3f', now - window))
local count = redis.call('ZCARD', KEYS[1])
if count < max then
  redis.call('ZADD', KEYS[1], string.format('%.3f', now), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window) + 1)
  return { 1, max - count - 1, 0 }
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local retryAfter = math.ceil(tonumber(oldest[2]) + window - now)
if retryAfter < 1 then retryAfter = 1 end
return { 0, 0, retryAfter }
