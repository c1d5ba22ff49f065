--[[ seal-batch: mark a batch as fully enqueued; publish its final progress if it is already done.
KEYS[1] batch hash
ARGV[1] now, epoch ms
ARGV[2] batch id
ARGV[3] progress channel
Reply: { total, sent, failed, suppressed, cancelled, finished (1/0) }
A batch with no jobs at all (no hash yet) is finished by sealing. Sealing a finished batch again
changes and publishes nothing.
]]
redis.call('HSET', KEYS[1], 'sealed', '1')
local c = batch_progress(KEYS[1], ARGV[3], ARGV[2], ARGV[1])
return { c.total, c.sent, c.failed, c.suppressed, c.cancelled, c.finished and 1 or 0 }
