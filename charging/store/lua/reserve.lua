-- reserve: hold an amount on a balance for a reservation (adds to it, refreshes its expiry).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 amount,
--       8 exp_us (new expiry), 9 partial ('1' grants what is available)
local res = ARGV[6]
local hf = B .. 'h|' .. res
local b = redis.call('HMGET', ACC, OPF, 'oe', B .. 'a', B .. 'r', B .. 'c', B .. 'x', B .. 'l',
                     hf)
if b[1] then
  local r = replay(b[1])
  if r then return r end
end
local oe = b[2]
if not b[3] then return missing(oe, res) end
local amt, rsv, cl = tonumber(b[3]), tonumber(b[4]), tonumber(b[5])
local before = amt - rsv + cl
if b[6] and tonumber(b[6]) <= tonumber(ARGV[4]) then
  return refuse('expired', amt, b[3], before, oe, res)
end
local grant, gs = tonumber(ARGV[7]), ARGV[7]
if grant > before then
  if ARGV[9] ~= '1' or before <= 0 then return refuse('insufficient', amt, b[3], before, oe, res) end
  grant = before
  gs = fmt(grant)
end
local held = 0
if b[8] then held = held_of(b[8]) end
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1] .. '|' .. ARGV[2] .. '|' .. res)
local after = before - grant
local low, low_s = low_crossed(b[7], before, after)
return finish({'ok', grant, amt, after, low, 0, grant, ARGV[8], 1},
              EP .. '|ok|' .. gs .. '|' .. b[3] .. '|' .. fmt(after) .. '|' .. low_s .. '|0|' ..
              gs .. '|' .. ARGV[8] .. '|1|' .. ARGV[2] .. '|' .. res, true,
              {B .. 'r', fmt(rsv + grant), hf, fmt(held + grant) .. ':' .. ARGV[8]}, oe)
