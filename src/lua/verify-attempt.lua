--[[ verify-attempt: count one attempt at a verification code before it is compared.
Counting first bounds the guesses to max attempts even when many arrive at once.
KEYS[1] code hash: hash (HMAC of the code), attempts, expiresAt (epoch ms), used
ARGV[1] max attempts
Reply: { state, hash, attempts }: state is 'missing' (none issued, or expired and gone),
'expired', 'used', 'locked' (max attempts reached), or 'ok' (the attempt is counted; compare
the hash).
]]
local state = redis.call('HMGET', KEYS[1], 'hash', 'attempts', 'expiresAt', 'used')
if not state[1] and not state[4] then return { 'missing', '', 0 } end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
if state[4] then return { 'used', '', 0 } end
if tonumber(state[3]) and tonumber(state[3]) <= now then return { 'expired', '', 0 } end
local attempts = tonumber(state[2]) or 0
if attempts >= tonumber(ARGV[1]) then return { 'locked', '', attempts } end
attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return { 'ok', state[1], attempts }
