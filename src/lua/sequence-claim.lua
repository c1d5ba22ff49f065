--[[ sequence-claim: take the enrolments that are due, under a lease.
KEYS[1] due zset of the sequences
ARGV[1] now, epoch ms
ARGV[2] end of the lease, epoch ms
ARGV[3] most enrolments to take
Reply: the enrolment keys taken. Each is due again at the end of the lease, so that another
runner takes it if this one dies before moving it on; no other runner takes it meanwhile.
]]
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
