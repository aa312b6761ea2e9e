-- release: remove a reservation, returning its hold to the balance.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation
local res = ARGV[6]
local hf = B .. 'h|' .. res
if not EPN then return redis.error_reply('ERR ARGV 3 is not a number') end
local b = redis.call('HMGET', ACC, OPF, 'oe', B, hf)
if b[1] and tonumber(string.sub(b[1], 1, string.find(b[1], '|', 1, true) - 1))
    >= EPN - 1 then
  return b[1]  -- replay (lua/_prelude.lua)
end
local oe = b[2]
if not b[3] then
  if redis.call('HEXISTS', ACC, 'kind') == 0 then return {'unknown_account'} end
  return finish({'unknown_balance', 0, 0, 0, 0, 0, 0, 0, 0},
                EP .. '|unknown_balance|0|0|0|0|0|0|0|0|' .. ARGV[2] .. '|' .. res, false, {}, oe)
end
local a, r, c, x, l = string.match(b[3], '^([^:]*):([^:]*):([^:]*):([^:]*):(.*)$')
local amt, rsv = tonumber(a), tonumber(r)
if not b[4] then
  local avail = amt - rsv + tonumber(c)
  return finish({'unknown_reservation', 0, amt, avail, 0, 0, 0, 0, 0},
                EP .. '|unknown_reservation|0|' .. a ..
                string.format('|%d|0|0|0|0|0|', avail) .. ARGV[2] .. '|' .. res, false, {}, oe)
end
local held = tonumber(string.match(b[4], '^[^:]*'))
redis.call('HDEL', ACC, hf)
redis.call('ZREM', KEYS[2], ARGV[1] .. '|' .. ARGV[2] .. '|' .. res)
local after = amt - rsv + held + tonumber(c)
return finish({'ok', 0, amt, after, 0, 0, -held, -1, 1},
              EP .. '|ok|0|' .. a .. string.format('|%d|0|0|%d|-1|1|', after, -held) ..
              ARGV[2] .. '|' .. res, true,
              {B, a .. string.format(':%d:', rsv - held) .. c .. ':' .. x .. ':' .. l}, oe)
