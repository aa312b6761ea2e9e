-- Shared helpers prepended to every single-balance op script (reserve, commit, release, debit,
-- credit). Not a script by itself. Those scripts share one KEYS/ARGV layout:
--   KEYS[1] {acct:ID}:b:<balance>   balance hash: kind cur amt rsv cl pri [exp] [low]
--   KEYS[2] {acct:ID}:r             reservations: "<balance>|<reservation>" -> "<amount>:<exp_us>"
--   KEYS[3] {acct:ID}:x             reservation expiries (zset, score exp_us)
--   KEYS[4] {acct:ID}:op:<key>      cached result of this op (cmsgpack), PX = retention
--   KEYS[5] {acct:ID}:unj           op keys applied here but not yet confirmed journaled
--   KEYS[6] {<slot tag>}:ix:x       slot index: account -> earliest reservation expiry (<= true)
--   KEYS[7] {<slot tag>}:ix:u       slot index: accounts that have unjournaled ops
--   KEYS[8] {acct:ID}:m             account meta (existence)
--   ARGV[1] account  ARGV[2] balance  ARGV[3] retention ms  ARGV[4] now (epoch us)  ARGV[5] key
-- A result is the array {status, granted, amount_after, available_after, low, effect, hold,
-- hold_exp_us (-1: reservation gone), has_hold, balance, reservation} plus a trailing replayed
-- flag (0/1). Amounts are integers below 2^53 (exact in Lua doubles); they are written back
-- with string.format('%d') / HINCRBY, never tostring (which would print 14 digits).
local function fmt(n) return string.format('%d', n) end

local function low_crossed(lowthr, before, after)
  if lowthr then
    local t = tonumber(lowthr)
    if before >= t and t > after then return 1 end
  end
  return 0
end

local function finish(res, mutated)
  redis.call('SET', KEYS[4], cmsgpack.pack(res), 'PX', ARGV[3])
  if mutated then
    redis.call('SADD', KEYS[5], ARGV[5])
    redis.call('SADD', KEYS[7], ARGV[1])
  end
  res[#res + 1] = 0
  return res
end

local function replay()
  local c = redis.call('GET', KEYS[4])
  if c then
    local r = cmsgpack.unpack(c)
    r[#r + 1] = 1
    return r
  end
  if redis.call('EXISTS', KEYS[8]) == 0 then return {'unknown_account'} end
  return nil
end
