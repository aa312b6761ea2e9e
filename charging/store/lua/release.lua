-- release: remove a reservation, returning its hold to the balance.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation
local res = ARGV[6]
local hf = B .. 'h|' .. res
local b = redis.call('HMGET', ACC, OPF, 'oe', B .. 'a', B .. 'r', B .. 'c', hf)
if b[1] then
  local r = replay(b[1])
  if r then return r end
end
local oe = b[2]
if not b[3] then return missing(oe, res) end
local amt, rsv, cl = tonumber(b[3]), tonumber(b[4]), tonumber(b[5])
if not b[6] then return refuse('unknown_reservation', amt, b[3], amt - rsv + cl, oe, res) end
local held = held_of(b[6])
redis.call('HDEL', ACC, hf)
redis.call('ZREM', KEYS[2], ARGV[1] .. '|' .. ARGV[2] .. '|' .. res)
local after = amt - rsv + held + cl
return finish({'ok', 0, amt, after, 0, 0, -held, -1, 1},
              EP .. '|ok|0|' .. b[3] .. string.format('|%d|0|0|%d|-1|1|', after, -held) ..
              ARGV[2] .. '|' .. res, true, {B .. 'r', fmt(rsv - held)}, oe)
