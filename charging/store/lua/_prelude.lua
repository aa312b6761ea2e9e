-- Shared helpers prepended to every single-balance op script (reserve, commit, release, debit,
-- credit). Not a script by itself. Those scripts share one KEYS/ARGV layout:
--   KEYS[1] {acct:ID}:b:<balance>   balance hash: kind cur amt rsv cl pri [exp] [low], and one
--                                   field per reservation: "r:<reservation>" -> "<amount>:<exp_us>"
--   KEYS[2] {acct:ID}:op:<key>      cached result of this op (cmsgpack), PX = retention
--   KEYS[3] {<slot tag>}:unj        slot index (set): "<account>|<key>" of every op applied
--                                   here but not yet confirmed journaled (one SADD per op)
--   KEYS[4] {<slot tag>}:ix:x       slot index (zset): "<account>|<balance>|<reservation>" by
--                                   expiry in epoch us; the TTL sweep reads it
--   KEYS[5] {acct:ID}:m             account meta (existence)
--   ARGV[1] account  ARGV[2] balance  ARGV[3] retention ms  ARGV[4] now (epoch us)  ARGV[5] key
-- A result is the array {status, granted, amount_after, available_after, low, effect, hold,
-- hold_exp_us (-1: reservation gone), has_hold, balance, reservation} plus a trailing replayed
-- flag (0/1). Amounts are integers below 2^53 (exact in Lua doubles); they are written back
-- with string.format('%d'), never tostring (which prints 14 significant digits).
local function fmt(n) return string.format('%d', n) end

local function low_crossed(lowthr, before, after)
  if lowthr then
    local t = tonumber(lowthr)
    if before >= t and t > after then return 1 end
  end
  return 0
end

local function finish(res, mutated)
  redis.call('SET', KEYS[2], cmsgpack.pack(res), 'PX', ARGV[3])
  if mutated then
    redis.call('SADD', KEYS[3], ARGV[1] .. '|' .. ARGV[5])
  end
  res[#res + 1] = 0
  return res
end

local function replay()
  local c = redis.call('GET', KEYS[2])
  if c then
    local r = cmsgpack.unpack(c)
    r[#r + 1] = 1
    return r
  end
  return nil
end

-- the balance is missing: tell an unknown account (not cached, as nothing exists to attach it
-- to) from an unknown balance (cached like any result)
local function missing(bal, res)
  if redis.call('EXISTS', KEYS[5]) == 0 then return {'unknown_account'} end
  return finish({'unknown_balance', 0, 0, 0, 0, 0, 0, 0, 0, bal, res}, false)
end

local function held_of(cur)
  local sep = string.find(cur, ':', 1, true)
  return tonumber(string.sub(cur, 1, sep - 1)), string.sub(cur, sep + 1)
end
