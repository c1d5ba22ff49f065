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
Mode 'pace' (the worker's per-provider pacing, docs/rate-limiting.md): the global limiter and the
limiters of the job's mailbox providers charged in one call, all or nothing. Every key shares one
hash slot (the caller names them so).
KEYS[1] global limiter; per provider i, 3 keys from KEYS[2 + 3(i-1)]: its limiter, its state hash
  (the slow-down: f = factor after the last decrease, at = when, server ms), its warm-up hash
  (day = the day key of the last send, n = recipients that day, days = sending days counted)
ARGV[1..3] global interval, burst, cost (cost 0: the global limiter is not charged)
ARGV[4] 'pace'
ARGV[5] parkAfterMs: a provider wait up to this is waited out, a longer one parks the job
ARGV[6] horizonMs: a provider wait beyond this reserves nothing (the job is re-delayed)
ARGV[7] lateMs: how late after its slot a parked job may still use it
per provider i, 9 values from ARGV[8 + 9(i-1)]: interval, burst, cost, step, cooldownMs, slot,
  today, counting, caps
  (the provider's rate is interval / factor; the factor rises by `step` per cooldownMs since the
  last decrease, back to 1. slot: 0, or the server ms of the slot a parked job reserved: when
  the job's global units may go by lateMs after it, the provider is not charged again; later, it
  is charged anew, so that a job back late cannot bunch with the slots after its own.
  today: '' for no warm-up, else the day key (YYYYMMDD in the warm-up's zone); counting: 1 when
  today counts as a sending day (on or after the start date); caps: the daily caps, ','-joined,
  day 1 first, no cap past the last. A day counts once something is sent to the provider on it;
  the warm-up hash expires after 30 days without a send, which starts the warm-up over)
Reply: { state, waitMs, providerWaitMs, providerAt (server ms, for a park), factor of provider 1
  (a string), ... }
  state 0  every limiter charged: wait waitMs, then send
        1  parked: only the providers' units reserved; they may be used in providerWaitMs
        2  full: nothing charged; a provider has no room within horizonMs (providerWaitMs)
        3  capped: nothing charged; a provider's warm-up cap for today is reached
Mode 'slow': KEYS[1] a provider's state hash; ARGV[1..3] 1 1 0 (unused), ARGV[4] 'slow',
  ARGV[5] decrease, ARGV[6] minimum factor, ARGV[7] step, ARGV[8] cooldownMs, ARGV[9] guardMs
  (no second decrease within guardMs of the last). Reply: { decreased (1/0), factor (a string) }
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

local function ceilMs(ms)
  if ms <= EPS then return 0 end
  return math.ceil(ms - EPS)
end

-- A provider's slow-down factor now: its last decrease, raised by `step` per cool-down since.
local function factorOf(stateKey, step, cooldown)
  local state = redis.call('HMGET', stateKey, 'f', 'at')
  local f, at = tonumber(state[1]), tonumber(state[2])
  if not f or not at then return 1 end
  local raised = f + math.floor((now - at) / cooldown) * step
  if raised >= 1 then return 1 end
  return raised
end

if mode == 'slow' then
  local decrease, minimum, step, cooldown, guard =
    tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
  local at = tonumber(redis.call('HGET', KEYS[1], 'at'))
  local factor = factorOf(KEYS[1], step, cooldown)
  -- Sends in flight when the rate dropped report their replies too: one decrease per guard time.
  if at and now - at < guard then return { 0, string.format('%.4f', factor) } end
  local f = math.max(minimum, factor * decrease)
  redis.call('HSET', KEYS[1], 'f', string.format('%.4f', f), 'at', string.format('%.3f', now))
  -- Kept until the factor is back at 1, then dropped.
  redis.call('PEXPIRE', KEYS[1], math.ceil((1 - f) / step + 1) * cooldown + 1000)
  return { 1, string.format('%.4f', f) }
end

if mode == 'pace' then
  local parkAfter, horizon, late = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local providers = (#KEYS - 1) / 3
  local capped = false
  local warm = {}
  local WARM_TTL = 30 * 86400000
  local function capAt(caps, index)
    local i = 0
    for cap in string.gmatch(caps, '%d+') do
      i = i + 1
      if i == index then return tonumber(cap) end
    end
    return nil
  end
  -- Every limiter as { key, tat, interval, cost, usable }: usable is when its units may go.
  local limiters = {}
  local factors = {}
  local function limiter(key, lInterval, lBurst, lCost)
    local lTat = tonumber(redis.call('GET', key)) or now
    if lTat < now then lTat = now end
    local usable = lCost > lBurst and lTat or (lTat + lCost * lInterval - lInterval * lBurst)
    if usable < now then usable = now end
    return { key = key, tat = lTat, interval = lInterval, cost = lCost, usable = usable }
  end
  -- When the global units could go: a parked job back on its slot must go by slot + lateMs.
  local g
  local globalAt = now
  if cost ~= 0 then
    g = limiter(KEYS[1], interval, burst, cost)
    if cost > 0 then globalAt = g.usable end
  end
  local providerAt = now
  for i = 1, providers do
    local a = 8 + 9 * (i - 1)
    local k = 2 + 3 * (i - 1)
    local factor = factorOf(KEYS[k + 1], tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]))
    local pCost = tonumber(ARGV[a + 2])
    local slot = tonumber(ARGV[a + 5]) or 0
    if slot > 0 and globalAt <= slot + late + EPS then pCost = 0 end
    local l = limiter(KEYS[k], tonumber(ARGV[a]) / factor, tonumber(ARGV[a + 1]), pCost)
    local today = ARGV[a + 6]
    if today ~= '' and pCost ~= 0 then
      local w = redis.call('HMGET', KEYS[k + 2], 'day', 'n', 'days')
      local n, days = tonumber(w[2]) or 0, tonumber(w[3]) or 0
      if w[1] ~= today then
        n = 0
        if ARGV[a + 7] == '1' then days = days + 1 end
      end
      if pCost > 0 then
        local cap = capAt(ARGV[a + 8], days < 1 and 1 or days)
        if cap and n + pCost > cap then capped = true end
        warm[#warm + 1] = { KEYS[k + 2], today, n + pCost, days }
      elseif w[1] == today then
        -- Units given back: so are their recipients of today.
        warm[#warm + 1] = { KEYS[k + 2], today, math.max(0, n + pCost), days }
      end
    end
    limiters[i] = l
    factors[i] = string.format('%.4f', factor)
    if l.cost > 0 and l.usable > providerAt then providerAt = l.usable end
  end
  -- A provider's units are taken as if they arrived at `at`, the moment the job may go: then its
  -- sends conform to its rate, whichever limiter made the job wait.
  local function charge(list, at)
    for _, l in ipairs(list) do
      local base = l.tat
      if l.cost > 0 and at > base then base = at end
      local newTat = base + l.cost * l.interval
      redis.call('SET', l.key, string.format('%.4f', newTat), 'PX', ceilMs(newTat - now) + 1)
    end
  end
  local state, wait = 0, 0
  local providerWait = providerAt - now
  local function writeWarm()
    for _, w in ipairs(warm) do
      redis.call('HSET', w[1], 'day', w[2], 'n', w[3], 'days', w[4])
      redis.call('PEXPIRE', w[1], WARM_TTL)
    end
  end
  if capped then
    state = 3
  elseif providerWait > horizon + EPS then
    state = 2
  elseif providerWait > parkAfter + EPS then
    state = 1
    charge(limiters, providerAt)
    writeWarm()
  else
    local at = providerAt
    if g then
      -- The global units are taken at their own slot, not behind the provider's wait: a job waiting
      -- for its provider holds up no other provider (its send is at most parkAfterMs past that slot).
      charge({ g }, g.usable)
      if globalAt > at then at = globalAt end
    end
    charge(limiters, at)
    writeWarm()
    wait = at - now
  end
  local reply = { state, ceilMs(wait), ceilMs(providerWait), string.format('%.3f', providerAt) }
  for i = 1, providers do reply[#reply + 1] = factors[i] end
  return reply
end

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
