--[[ enqueue: add jobs, each either to its send stream or to the delayed set. Many jobs per call.
KEYS[1] delayed zset
KEYS[2] KEYS[3] KEYS[4] send streams high, normal, low
per job, in order from KEYS[5]: its status hash, then its idempotency key only when it has one
  (the flag below is 1), then its batch hash only when it is in a batch (a batch id below): one to
  three keys a job, so that a job without either sends its status key once
ARGV[1] now, epoch ms
ARGV[2] idempotency TTL, seconds
per job i (3 values from ARGV[3 + 3(i-1)]): id, payload (JSON), and the rest in one
  space-separated string (fewer arguments make a big batch much cheaper to send):
  '<due ms, 0 = now> <priority> <type> <max attempts> <batch id or nothing> <recipients> <1|0>[ <fingerprint>][ <trace>][ <variant>]'
  where recipients are lower-case and ','-joined, and the flag is 1 when the job has an
  idempotency key. None of these values can contain a space. The fingerprint (optional; '-' for
  none when a trace follows) is a hash of the job's content: it is stored with the idempotency key
  (its value is then '<job id> <fingerprint>', else '<job id>'), and a job whose fingerprint
  differs from the one stored with its key is a conflict. The trace (optional) is the W3C
  traceparent of the enqueue span, stored as the status field 'trace' ('-' for none when a variant
  follows). The variant (optional) is the index of the job's A/B test variant, stored as the status
  field 'variant' (finish and ses-event count the job's outcome and events for it).
Reply: flat list { id, status, created, ... } per job. created is 1 for a new job, 0 when the
id or the idempotency key already names a job (status is '' when only the key was found), 2
when the job's batch was cancelled (status 'cancelled'; nothing is written), and 3 when the key
names a job stored with another fingerprint (id is that job's, status ''; nothing is written).
A key stored without a fingerprint, or a job sent without one, is never a conflict.
A batch's total counts its new jobs; it is raised once per batch per call.
]]
local now = ARGV[1]
local stream = { high = KEYS[2], normal = KEYS[3], low = KEYS[4] }
local out = {}
local added = {}
local cancelled = {}
local k = 5
for a = 3, #ARGV, 3 do
  local id, payload = ARGV[a], ARGV[a + 1]
  local dueText, priority, jobType, maxAttempts, batchId, rcpt, idem, fingerprint, trace, variant =
    string.match(ARGV[a + 2], '^(%d+) (%S+) (%S+) (%d+) (%S*) (%S+) ([01]) ?(%S*) ?(%S*) ?(%S*)$')
  local statusKey, idemKey, batchKey = KEYS[k], nil, nil
  k = k + 1
  if idem == '1' then idemKey = KEYS[k]; k = k + 1 end
  if batchId ~= '' then batchKey = KEYS[k]; k = k + 1 end
  if fingerprint == '-' then fingerprint = '' end
  if trace == '-' then trace = '' end
  local due = tonumber(dueText)
  local existing = false
  local conflict = false
  if idem == '1' then
    existing = redis.call('GET', idemKey)
    local space = existing and string.find(existing, ' ', 1, true)
    if space then
      conflict = fingerprint ~= '' and string.sub(existing, space + 1) ~= fingerprint
      existing = string.sub(existing, 1, space - 1)
    end
  end
  local current = false
  if not existing then current = redis.call('HGET', statusKey, 'status') end
  local refused = false
  if not existing and not current and batchId ~= '' then
    refused = cancelled[batchKey]
    if refused == nil then
      refused = redis.call('HEXISTS', batchKey, 'cancelledAt') == 1
      cancelled[batchKey] = refused
    end
  end
  if existing then
    out[#out + 1] = existing; out[#out + 1] = ''; out[#out + 1] = conflict and 3 or 0
  elseif current then
    out[#out + 1] = id; out[#out + 1] = current; out[#out + 1] = 0
  elseif refused then
    out[#out + 1] = id; out[#out + 1] = 'cancelled'; out[#out + 1] = 2
  else
    local status = 'queued'
    local fields = { 'status', status, 'priority', priority, 'type', jobType, 'maxAttempts', maxAttempts,
      'createdAt', now }
    if due > 0 then
      status = 'scheduled'
      fields[2] = status
      redis.call('ZADD', KEYS[1], due, id)
      fields[11] = 'dueAt'; fields[12] = due; fields[13] = 'job'; fields[14] = payload
      fields[15] = 'rcpt'; fields[16] = rcpt
    else
      fields[11] = 'entry'
      fields[12] = redis.call('XADD', stream[priority], '*', 'id', id, 'job', payload, 'r', rcpt)
    end
    if trace ~= '' then fields[#fields + 1] = 'trace'; fields[#fields + 1] = trace end
    if variant ~= '' then fields[#fields + 1] = 'variant'; fields[#fields + 1] = variant end
    if batchId ~= '' then
      fields[#fields + 1] = 'batch'; fields[#fields + 1] = batchId
      added[batchKey] = (added[batchKey] or 0) + 1
    end
    redis.call('HSET', statusKey, unpack(fields))
    if idem == '1' then
      redis.call('SET', idemKey, fingerprint == '' and id or (id .. ' ' .. fingerprint), 'EX', ARGV[2])
    end
    out[#out + 1] = id; out[#out + 1] = status; out[#out + 1] = 1
  end
end
for batchKey, n in pairs(added) do redis.call('HINCRBY', batchKey, 'total', n) end
return out
