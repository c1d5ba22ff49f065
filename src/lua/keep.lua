--[[ keep: reset the idle time of entries this consumer is still working on, so that no other
worker takes them over while they wait (a long render, an outcome Redis does not accept yet).
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
ARGV[1] consumer group
ARGV[2] consumer name
then pairs: streamIndex, entryId
An entry another consumer owns by now is left alone. XCLAIM with JUSTID does not count a delivery.
Reply: how many entries were kept.
]]
local group, consumer = ARGV[1], ARGV[2]
local kept = 0
for a = 3, #ARGV, 2 do
  local stream = KEYS[tonumber(ARGV[a])]
  local entryId = ARGV[a + 1]
  local pending = redis.call('XPENDING', stream, group, entryId, entryId, 1)
  if pending[1] and pending[1][2] == consumer then
    redis.call('XCLAIM', stream, group, consumer, 0, entryId, 'JUSTID')
    kept = kept + 1
  end
end
return kept
