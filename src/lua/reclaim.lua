--[[ reclaim: take over entries that other consumers left pending for too long.
KEYS[1] send stream
ARGV[1] consumer group
ARGV[2] consumer name (the new owner)
ARGV[3] minimum idle time, ms
ARGV[4] cursor: '-' to start, else the last entry id looked at
ARGV[5] how many entries at most
Entries this consumer holds itself are never claimed: it is still working on them (a slow render,
an outcome waiting for Redis to accept writes), and sending them again would send them twice. Its
own entries left from an earlier life are taken back by the worker's own-recovery instead.
Reply: { nextCursor, then per claimed entry entryId, jobId, payload, rcpt, deliveries }; the
delivery that XCLAIM counts now is included. Entries deleted from the stream leave the pending list.
nextCursor is '-' once the pending list was read to its end; otherwise the last of the 2 x ARGV[5]
entries looked at, so that others' entries looked at but past the count wait for the next pass from '-'.
]]
local stream, group, consumer = KEYS[1], ARGV[1], ARGV[2]
local count = tonumber(ARGV[5])
local start = ARGV[4] == '-' and '-' or ('(' .. ARGV[4])
-- Looks at a few more entries than it may claim, so that this consumer's own do not starve the rest.
local pending = redis.call('XPENDING', stream, group, 'IDLE', ARGV[3], start, '+', count * 2)
local out = { '-' }
if #pending == count * 2 then out[1] = pending[#pending][1] end
local others, times = {}, {}
for _, p in ipairs(pending) do
  if p[2] ~= consumer and #others < count then
    others[#others + 1] = p[1]
    times[p[1]] = p[4]
  end
end
if #others == 0 then return out end
local claimed = redis.call('XCLAIM', stream, group, consumer, ARGV[3], unpack(others))
for _, entry in ipairs(claimed) do
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
    out[#out + 1] = entry[1]
    out[#out + 1] = jobId
    out[#out + 1] = payload
    out[#out + 1] = rcpt
    out[#out + 1] = (times[entry[1]] or 0) + 1
  end
end
return out
