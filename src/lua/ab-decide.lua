--[[ ab-decide: record the winner of an A/B test, once.
KEYS[1] batch hash
ARGV[1] the decision (JSON)
ARGV[2] the winner's index
Reply: the decision recorded: this one, or the one an earlier call recorded (then nothing changes).
]]
if redis.call('HSETNX', KEYS[1], 'ab:decision', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'ab:winner', ARGV[2])
  return ARGV[1]
end
return redis.call('HGET', KEYS[1], 'ab:decision')
