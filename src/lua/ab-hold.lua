--[[ ab-hold: hold back recipients of an A/B test batch for the winner, unless it is known already.
KEYS[1] batch hash
KEYS[2] the batch's holdout list
ARGV[1..] one recipient each (JSON)
Reply: -1 when they were appended to the list; the winner's index when the test was decided (nothing
is appended: the caller enqueues them with the winner); -2 when the batch was cancelled (nothing is
appended). Deciding and appending never interleave, so no recipient is appended after the drain.
'ab:held' in the batch hash counts the recipients appended.
]]
if redis.call('HEXISTS', KEYS[1], 'cancelledAt') == 1 then return -2 end
local winner = redis.call('HGET', KEYS[1], 'ab:winner')
if winner then return tonumber(winner) end
redis.call('RPUSH', KEYS[2], unpack(ARGV))
redis.call('HINCRBY', KEYS[1], 'ab:held', #ARGV)
return -1
