--[[ verify-use: use a verification code once: compare-and-mark on the stored hash.
Of concurrent verifications with the right code exactly one finds the hash still there.
KEYS[1] code hash: hash, attempts, expiresAt, used
ARGV[1] the stored hash that the code matched
Reply: 1 when this call used the code, 0 when it was used, replaced or expired meanwhile (expired
means the key is gone: expiresAt is not read here, the key expires at that time). The key's TTL
is kept.
]]
if redis.call('HGET', KEYS[1], 'hash') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'hash')
redis.call('HSET', KEYS[1], 'used', '1')
return 1
