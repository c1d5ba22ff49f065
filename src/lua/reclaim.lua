--[[ reclaim: take over entries that another consumer left pending for too long.
KEYS[1] send stream
ARGV[1] consumer group
ARGV[2] consumer name (the new owner)
ARGV[3] minimum idle time, ms
ARGV[4] XAUTOCLAIM cursor ('0-0' to start)
ARGV[5] how many entries at most
Reply: { nextCursor, then per entry entryId, jobId, payload, rcpt, deliveries }. XAUTOCLAIM
has already counted this delivery. Entries deleted from the stream leave the pending list.
]]
local res = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = { res[1] }
for _, entry in ipairs(res[2]) do
  if entry and entry[1] then
    local jobId, payload, rcpt = '', '', ''
    local fields = entry[2]
    if fields then
      for j = 1, #fields, 2 do
        local name = fields[j]
        if name == 'id' then jobId = fields[j + 1]
        elseif name == 'job' then payload = fields[j + 1]
        elseif name == 'r' then rcpt = fields[j + 1] end
      end
    end
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry[1], entry[1], 1)
    local deliveries = 1
    if pending[1] then deliveries = pending[1][4] end
    out[#out + 1] = entry[1]
    out[#out + 1] = jobId
    out[#out + 1] = payload
    out[#out + 1] = rcpt
    out[#out + 1] = deliveries
  end
end
if res[3] then
  for _, deleted in ipairs(res[3]) do
    redis.call('XACK', KEYS[1], ARGV[1], deleted)
  end
end
return out
