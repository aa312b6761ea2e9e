-- debit: direct debiting (no reservation), all or nothing unless partial.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 amount, 7 partial ('1')
local b = redis.call('HMGET', ACC, OPF, 'oe', B .. 'a', B .. 'r', B .. 'c', B .. 'x', B .. 'l')
if b[1] then
  local r = replay(b[1])
  if r then return r end
end
local oe = b[2]
if not b[3] then return missing(oe, '') end
local amt, rsv, cl = tonumber(b[3]), tonumber(b[4]), tonumber(b[5])
local before = amt - rsv + cl
if b[6] and tonumber(b[6]) <= tonumber(ARGV[4]) then
  return refuse('expired', amt, b[3], before, oe, '')
end
local take = tonumber(ARGV[6])
if take > before then
  if ARGV[7] ~= '1' or before <= 0 then return refuse('insufficient', amt, b[3], before, oe, '') end
  take = before
end
local sets = {}
if take ~= 0 then sets = {B .. 'a', fmt(amt - take)} end
local after = before - take
local low, low_s = low_crossed(b[7], before, after)
return finish({'ok', take, amt - take, after, low, -take, 0, 0, 0},
              EP .. '|ok|' .. string.format('%d|%d|%d|', take, amt - take, after) .. low_s ..
              string.format('|%d|0|0|0|', -take) .. ARGV[2] .. '|', take ~= 0, sets, oe)
