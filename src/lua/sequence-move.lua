--[[ sequence-move: move an enrolment on, if it is still where the caller saw it (compare and set).
KEYS[1] enrolment hash
KEYS[2] due zset of the sequences
KEYS[3] stats hash of the sequence
ARGV[1] expected run ('' for any)
ARGV[2] expected step ('' for any; '-' for the end)
ARGV[3] expected statuses, ',' around each (',active,waiting,')
ARGV[4] new step ('' keeps it; '-' for the end)
ARGV[5] new status: active, waiting, done or exited
ARGV[6] when it is next due, epoch ms (ignored for done and exited, which leave the due set)
ARGV[7] now, epoch ms
ARGV[8] the step whose email this move records as sent ('' for none)
ARGV[9] exit reason ('' for none)
ARGV[10..] more field, value pairs to set
Reply: 1 when moved; 0 when the enrolment is gone or not as expected (nothing is written).
The stats hash counts the enrolments at each step (at:<step>, active and waiting only), by
status (status:<status>), the emails sent per step (sent:<step>) and the exits per reason.
]]
local state = redis.call('HMGET', KEYS[1], 'run', 'step', 'status')
local status = state[3]
if not status then return 0 end
local step = state[2] or ''
if ARGV[1] ~= '' and state[1] ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' and step ~= (ARGV[2] == '-' and '' or ARGV[2]) then return 0 end
if not string.find(ARGV[3], ',' .. status .. ',', 1, true) then return 0 end
local newStep = step
if ARGV[4] ~= '' then newStep = (ARGV[4] == '-' and '' or ARGV[4]) end
local newStatus = ARGV[5]
local final = newStatus == 'done' or newStatus == 'exited'
redis.call('HSET', KEYS[1], 'step', newStep, 'status', newStatus, 'updatedAt', ARGV[7])
for i = 10, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if final then
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('HSET', KEYS[1], 'finishedAt', ARGV[7])
  redis.call('HDEL', KEYS[1], 'nextAt', 'waitingFor')
else
  redis.call('ZADD', KEYS[2], ARGV[6], KEYS[1])
  redis.call('HSET', KEYS[1], 'nextAt', ARGV[6])
  if newStatus ~= 'waiting' then redis.call('HDEL', KEYS[1], 'waitingFor') end
end
local wasFinal = status == 'done' or status == 'exited'
if not wasFinal and step ~= '' and (final or newStep ~= step) then
  redis.call('HINCRBY', KEYS[3], 'at:' .. step, -1)
end
if not final and newStep ~= '' and (wasFinal or newStep ~= step) then
  redis.call('HINCRBY', KEYS[3], 'at:' .. newStep, 1)
end
if newStatus ~= status then
  redis.call('HINCRBY', KEYS[3], 'status:' .. status, -1)
  redis.call('HINCRBY', KEYS[3], 'status:' .. newStatus, 1)
end
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[3], 'sent:' .. ARGV[8], 1) end
if ARGV[9] ~= '' then
  redis.call('HSET', KEYS[1], 'exitReason', ARGV[9])
  redis.call('HINCRBY', KEYS[3], 'exited:' .. ARGV[9], 1)
end
return 1
