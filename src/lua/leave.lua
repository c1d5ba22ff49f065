--[[ leave: remove a stopped worker's consumer from the group on every send stream, but only when
it holds nothing there: a consumer's pending entries would be dropped with it and never be
delivered again, so a consumer that holds any stays for another worker to reclaim them.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
ARGV[1] consumer group
ARGV[2] consumer name
A stream or group that does not exist holds nothing of the consumer.
Reply: 1 when the consumer was removed (from every stream that had it), 0 when it holds entries
on one of them (nothing is removed).
]]
local group, consumer = ARGV[1], ARGV[2]
for i = 1, #KEYS do
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[i], group, '-', '+', 1, consumer)
  if ok and #pending > 0 then return 0 end
end
for i = 1, #KEYS do
  pcall(redis.call, 'XGROUP', 'DELCONSUMER', KEYS[i], group, consumer)
end
return 1
