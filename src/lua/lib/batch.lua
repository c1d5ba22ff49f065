--[[ lib/batch: prepended to every script that changes a batch's counters.
A batch hash holds total (jobs enqueued), sent, failed, suppressed, cancelled, sealed ('1' once
every job of the batch is enqueued), finishedAt (set once, when the batch is done) and the last
progress published (progressCompleted, progressPercent, progressAt).
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

local function batch_message(batchId, c, completed, percentage, done)
  return cjson.encode({
    batchId = batchId, completed = completed, total = c.total, percentage = percentage, sent = c.sent,
    failed = c.failed, suppressed = c.suppressed, cancelled = c.cancelled, done = done,
  })
end

-- Publishes progress after a change to the batch's counters. When the batch is sealed and every
-- job has finished, marks it finished and publishes the final message, exactly once: the script
-- that makes the last change does it. Otherwise publishes when the batch crosses a whole percent
-- or at least every 250 ms while it moves. Publishing here, on the node that owns the batch,
-- keeps the messages of one batch in order on Redis Cluster too.
local function batch_progress(batchKey, channel, batchId, now)
  local c = batch_counters(batchKey)
  local completed = c.sent + c.failed + c.suppressed + c.cancelled
  if c.finished then return c end
  if c.sealed and completed >= c.total then
    redis.call('HSET', batchKey, 'finishedAt', now)
    c.finished = true
    redis.call('PUBLISH', channel, batch_message(batchId, c, completed, 100, true))
    return c
  end
  local percentage = 0
  if c.total > 0 then percentage = math.min(100, math.floor(completed * 10000 / c.total) / 100) end
  local last = redis.call('HMGET', batchKey, 'progressCompleted', 'progressPercent', 'progressAt')
  local lastCompleted, lastPercent, lastAt = tonumber(last[1]) or -1, tonumber(last[2]) or -1, tonumber(last[3]) or 0
  if completed > lastCompleted and (math.floor(percentage) > lastPercent or tonumber(now) - lastAt >= 250) then
    redis.call('HSET', batchKey, 'progressCompleted', completed, 'progressPercent', math.floor(percentage),
      'progressAt', now)
    redis.call('PUBLISH', channel, batch_message(batchId, c, completed, percentage, false))
  end
  return c
end
