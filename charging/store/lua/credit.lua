-- credit: topup or refund; refuses a result past 2^53-1 (amount + credit_limit) as out_of_range.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 amount
local b = redis.call('HMGET', ACC, OPF, 'oe', B .. 'a', B .. 'r', B .. 'c')
if b[1] then
  local r = replay(b[1])
  if r then return r end
end
local oe = b[2]
if not b[3] then return missing(oe, '') end
local amt, rsv, cl = tonumber(b[3]), tonumber(b[4]), tonumber(b[5])
local x = tonumber(ARGV[6])
if x < 0 or x > 9007199254740991 or amt + x + cl > 9007199254740991 then
  return refuse('out_of_range', amt, b[3], amt - rsv + cl, oe, '')
end
local sets = {}
if x ~= 0 then sets = {B .. 'a', fmt(amt + x)} end
return finish({'ok', x, amt + x, amt + x - rsv + cl, 0, x, 0, 0, 0},
              EP .. '|ok|' .. string.format('%d|%d|%d|0|%d|0|0|0|', x, amt + x, amt + x - rsv + cl,
                                            x) .. ARGV[2] .. '|', x ~= 0, sets, oe)
