--[[ fetch: read new entries for one consumer in strict priority order (high, then normal,
then low), never more than ARGV[3] in all.
KEYS[1] KEYS[2] KEYS[3] send streams high, normal, low
ARGV[1] consumer group
ARGV[2] consumer name
ARGV[3] how many entries at most
Reply: flat list { streamIndex, entryId, jobId, ... } (jobId is '' when the entry has none).
]]
local out = {}
local left = tonumber(ARGV[3])
for i = 1, 3 do
  if left <= 0 then break end
  local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', left, 'STREAMS', KEYS[i], '>')
  if res then
    for _, entry in ipairs(res[1][2]) do
      local fields = entry[2]
      local jobId = ''
      for j = 1, #fields, 2 do
        if fields[j] == 'id' then jobId = fields[j + 1] end
      end
      out[#out + 1] = i
      out[#out + 1] = entry[1]
      out[#out + 1] = jobId
      left = left - 1
    end
  end
end
return out
