--[[ sequence-enroll: start an enrolment of one address in one sequence, once.
KEYS[1] enrolment hash
KEYS[2] due zset of the sequences
KEYS[3] stats hash of the sequence
ARGV[1] now, epoch ms
ARGV[2] '1' to start again an enrolment that is over (done or exited), else '0'
ARGV[3] the first step's id
ARGV[4..] field, value pairs of the enrolment (address, sequence, data, version...)
Reply: { created (1/0), status }. An enrolment that is active or waiting is never touched; one
that is over is left as it is unless ARGV[2] is '1', in which case it begins again with its run
counter raised (so that its emails get new job ids).
]]
local status = redis.call('HGET', KEYS[1], 'status')
if status and (status == 'active' or status == 'waiting' or ARGV[2] ~= '1') then
  return { 0, status }
end
local run = 1
if status then
  run = tonumber(redis.call('HGET', KEYS[1], 'run') or '0') + 1
  redis.call('HINCRBY', KEYS[3], 'status:' .. status, -1)
  redis.call('DEL', KEYS[1])
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'run', run, 'step', ARGV[3], 'index', 0, 'status', 'active',
  'enrolledAt', ARGV[1], 'updatedAt', ARGV[1], 'nextAt', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[1], KEYS[1])
redis.call('HINCRBY', KEYS[3], 'enrolled', 1)
redis.call('HINCRBY', KEYS[3], 'status:active', 1)
redis.call('HINCRBY', KEYS[3], 'at:' .. ARGV[3], 1)
return { 1, 'active' }
