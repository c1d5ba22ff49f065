--[[ gcra: one rate-limit decision with the generic cell rate algorithm (GCRA).
The whole state is one number, the theoretical arrival time (TAT): the moment at which the bucket
would be full again. Units refill continuously at one per emission interval; at most `burst` units
can be taken at once. Over any span of W ms at most burst + W / interval units are taken, with no
edge where two windows meet. Server time (TIME) is used, so the clocks of the callers do not matter.
KEYS[1] limiter state (string: TAT, epoch ms; expires when the bucket is full again)
ARGV[1] emission interval: ms per unit (period / rate), may be fractional
ARGV[2] burst: units the bucket holds
ARGV[3] cost: units to take (0 only looks; negative in 'reserve' mode gives reserved units back)
ARGV[4] mode: 'take'    take the units only if they are there now; a cost above burst is taken
                        only when the bucket is full (it then runs the bucket into debt)
              'reserve' always take the units; waitMs says when they may be used
ARGV[5] lookahead, ms: `soon` counts the units free within this time
Reply: { allowed (1/0), remaining, retryAfterMs, resetAfterMs, waitMs, soon }
  remaining     whole units free now, after this call
  retryAfterMs  0 when allowed; otherwise when the same cost would be allowed (for cost 0: when one
                unit is free)
  resetAfterMs  until the bucket is full again
  waitMs        'reserve': how long until the reserved units may be used
  soon          whole units free within the lookahead
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local mode = ARGV[4]
local lookahead = tonumber(ARGV[5]) or 0
local tolerance = interval * burst
-- Float arithmetic on epoch ms: a microsecond of slack keeps exact boundaries exact.
local EPS = 0.001

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end

local function freeAt(at, theTat)
  local debt = theTat - at
  if debt < 0 then debt = 0 end
  local units = math.floor((tolerance - debt + EPS) / interval)
  if units < 0 then return 0 end
  if units > burst then return burst end
  return units
end

local function ceilMs(ms)
  if ms <= EPS then return 0 end
  return math.ceil(ms - EPS)
end

local allowed = 0
local retryAfter = 0
local wait = 0
local newTat = tat + cost * interval
if cost == 0 then
  allowed = 1
  retryAfter = tat + interval - tolerance - now
elseif mode == 'reserve' then
  allowed = 1
  -- A cost above burst may go once the bucket is full; any other once it fits.
  local usableAt = cost > burst and tat or (newTat - tolerance)
  wait = usableAt - now
elseif newTat - now <= tolerance + EPS or (cost > burst and tat <= now + EPS) then
  allowed = 1
else
  retryAfter = (cost > burst and tat or (newTat - tolerance)) - now
end

if allowed == 1 and cost ~= 0 then
  redis.call('SET', KEYS[1], string.format('%.4f', newTat), 'PX', ceilMs(newTat - now) + 1)
  tat = newTat
end
return { allowed, freeAt(now, tat), ceilMs(retryAfter), ceilMs(tat - now), ceilMs(wait), freeAt(now + lookahead, tat) }
