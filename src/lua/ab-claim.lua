--[[ ab-claim: claim A/B tests whose decision is due, for one worker at a time.
KEYS[1] the tests zset (batch id -> due time, epoch ms)
ARGV[1] now, epoch ms
ARGV[2] lease, ms
ARGV[3] how many at most
Reply: the batch ids claimed. A claim moves the test's due time to the end of the lease: no other
worker takes it meanwhile, and if this one dies the test comes due again when the lease ends. The
worker removes a test once its holdout list is drained.
]]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, id in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', until_, id) end
return due
