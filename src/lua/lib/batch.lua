--[[ lib/batch: prepended to every script that changes a batch's counters.
A batch hash holds total (jobs enqueued), sent, failed, suppressed, cancelled, sealed ('1' once
every job of the batch is enqueued) and finishedAt (set once, when the batch is done).
]]
local function batch_counters(batchKey)
  local c = redis.call('HMGET', batchKey, 'total', 'sent', 'failed', 'suppressed', 'cancelled', 'sealed', 'finishedAt')
  return {
    total = tonumber(c[1]) or 0,
    sent = tonumber(c[2]) or 0,
    failed = tonumber(c[3]) or 0,
    suppressed = tonumber(c[4]) or 0,
    cancelled = tonumber(c[5]) or 0,
    sealed = c[6] == '1',
    finished = c[7] ~= false,
  }
end

-- When the batch is sealed and every job has finished, marks it finished and publishes the final
-- progress message, exactly once: the script that makes the last change does it atomically.
local function batch_finish_if_done(batchKey, channel, batchId, now)
  local c = batch_counters(batchKey)
  local completed = c.sent + c.failed + c.suppressed + c.cancelled
  if c.sealed and not c.finished and completed >= c.total then
    redis.call('HSET', batchKey, 'finishedAt', now)
    c.finished = true
    redis.call('PUBLISH', channel, cjson.encode({
      batchId = batchId, completed = completed, total = c.total, percentage = 100, sent = c.sent,
      failed = c.failed, suppressed = c.suppressed, cancelled = c.cancelled, done = true,
    }))
  end
  return c
end
