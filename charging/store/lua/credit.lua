-- credit: topup or refund; refuses a result past 2^53-1 (amount + credit_limit) as out_of_range.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 amount
if not EPN then return redis.error_reply('ERR ARGV 3 is not a number') end
local n = tonumber(ARGV[6])
if not n then return redis.error_reply('ERR ARGV 6 is not a number') end
local b = redis.call('HMGET', ACC, OPF, 'oe', B)
if b[1] and tonumber(string.sub(b[1], 1, string.find(b[1], '|', 1, true) - 1))
    >= EPN - 1 then
  return b[1]  -- replay (lua/_prelude.lua)
end
local oe = b[2]
if not b[3] then
  if redis.call('HEXISTS', ACC, 'kind') == 0 then return {'unknown_account'} end
  return finish({'unknown_balance', 0, 0, 0, 0, 0, 0, 0, 0},
                EP .. '|unknown_balance|0|0|0|0|0|0|0|0|' .. ARGV[2] .. '|', false, {}, oe)
end
local a, r, c, x, l = string.match(b[3], '^([^:]*):([^:]*):([^:]*):([^:]*):(.*)$')
local amt, cl = tonumber(a), tonumber(c)
local avail = amt - tonumber(r) + cl
if n < 0 or n > 9007199254740991 or amt + n + cl > 9007199254740991 then
  return finish({'out_of_range', 0, amt, avail, 0, 0, 0, 0, 0},
                EP .. '|out_of_range|0|' .. a .. string.format('|%d|0|0|0|0|0|', avail) ..
                ARGV[2] .. '|', false, {}, oe)
end
local sets = {}
if n ~= 0 then
  sets = {B, string.format('%d:', amt + n) .. r .. ':' .. c .. ':' .. x .. ':' .. l}
end
return finish({'ok', n, amt + n, avail + n, 0, n, 0, 0, 0},
              EP .. string.format('|ok|%d|%d|%d|0|%d|0|0|0|', n, amt + n, avail + n, n) ..
              ARGV[2] .. '|', n ~= 0, sets, oe)
