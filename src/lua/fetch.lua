--[[ fetch: read new entries for one consumer in strict priority order (high, then normal,
then low), never more than ARGV[3] in all, and check their recipients against the
suppression list.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
KEYS[4] suppression hash (address -> reason)
ARGV[1] consumer group
ARGV[2] consumer name
ARGV[3] how many entries at most
Reply: flat list, per entry { streamIndex, entryId, jobId, payload, attempts, rcpt, suppressed,
throttles } ('' for a missing field, '0' for missing attempts and throttles; suppressed is the ','-joined list of suppressed
recipients). Entries read are pending for this consumer.
]]
local out = {}
local left = tonumber(ARGV[3])
local checkSuppression = redis.call('HLEN', KEYS[4]) > 0
for i = 1, 3 do
  if left <= 0 then break end
  local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', KEYS[i], '>')
  if res then
    for _, entry in ipairs(res[1][2]) do
      local fields = entry[2]
      local jobId, payload, attempts, rcpt, throttles = '', '', '0', '', '0'
      for j = 1, #fields, 2 do
        local name = fields[j]
        if name == 'id' then jobId = fields[j + 1]
        elseif name == 'job' then payload = fields[j + 1]
        elseif name == 'a' then attempts = fields[j + 1]
        elseif name == 't' then throttles = fields[j + 1]
        elseif name == 'r' then rcpt = fields[j + 1] end
      end
      local suppressed = ''
      if checkSuppression then
        for address in string.gmatch(rcpt, '[^,]+') do
          if redis.call('HEXISTS', KEYS[4], address) == 1 then
            suppressed = suppressed == '' and address or (suppressed .. ',' .. address)
          end
        end
      end
      out[#out + 1] = i
      out[#out + 1] = entry[1]
      out[#out + 1] = jobId
      out[#out + 1] = payload
      out[#out + 1] = attempts
      out[#out + 1] = rcpt
      out[#out + 1] = suppressed
      out[#out + 1] = throttles
      left = left - 1
    end
  end
end
return out
