--[[ ab-trim: drop the first recipients of an A/B test's holdout list once they were enqueued.
KEYS[1] batch hash
KEYS[2] the batch's holdout list
ARGV[1] how many the caller saw trimmed before it read them ('ab:trimmed')
ARGV[2] how many it enqueued, from the head of the list
Reply: 1 when they were dropped; 0 when another drain dropped them first (nothing changes). A
drain that dies between enqueueing and this call enqueues the same recipients again next time, as
duplicates of the same job ids: none is lost, none is sent twice.
]]
if (tonumber(redis.call('HGET', KEYS[1], 'ab:trimmed')) or 0) ~= tonumber(ARGV[1]) then return 0 end
redis.call('LTRIM', KEYS[2], ARGV[2], -1)
redis.call('HINCRBY', KEYS[1], 'ab:trimmed', ARGV[2])
return 1
