-- debit: direct debiting (no reservation), all or nothing unless partial.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 amount, 7 partial ('1')
if not EPN then return redis.error_reply('ERR ARGV 3 is not a number') end
local take = tonumber(ARGV[6])
if not take then return redis.error_reply('ERR ARGV 6 is not a number') end
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
local amt = tonumber(a)
local before = amt - tonumber(r) + tonumber(c)
local status = nil
if x ~= '' and tonumber(x) <= tonumber(ARGV[4]) then
  status = 'expired'
elseif take > before then
  if ARGV[7] ~= '1' or before <= 0 then status = 'insufficient' else take = before end
end
if status then
  return finish({status, 0, amt, before, 0, 0, 0, 0, 0},
                EP .. '|' .. status .. '|0|' .. a .. string.format('|%d|0|0|0|0|0|', before) ..
                ARGV[2] .. '|', false, {}, oe)
end
local sets = {}
if take ~= 0 then
  sets = {B, string.format('%d:', amt - take) .. r .. ':' .. c .. ':' .. x .. ':' .. l}
end
local after = before - take
local low = 0
if l ~= '' and before >= tonumber(l) and tonumber(l) > after then low = 1 end
return finish({'ok', take, amt - take, after, low, -take, 0, 0, 0},
              EP .. string.format('|ok|%d|%d|%d|%d|%d|0|0|0|', take, amt - take, after, low,
                                  -take) .. ARGV[2] .. '|', take ~= 0, sets, oe)
