-- commit: debit what was used against a reservation; release the rest (or keep it).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 used,
--       8 release_rest ('1' removes the reservation)
local res = ARGV[6]
local hf = B .. 'h|' .. res
if not EPN then return redis.error_reply('ERR ARGV 3 is not a number') end
local used = tonumber(ARGV[7])
if not used then return redis.error_reply('ERR ARGV 7 is not a number') end
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
local before = amt - rsv + tonumber(c)
if not b[4] then
  return finish({'unknown_reservation', 0, amt, before, 0, 0, 0, 0, 0},
                EP .. '|unknown_reservation|0|' .. a ..
                string.format('|%d|0|0|0|0|0|', before) .. ARGV[2] .. '|' .. res, false, {}, oe)
end
local hs, rexp = string.match(b[4], '^([^:]*):(.*)$')
local held = tonumber(hs)
-- used beyond the hold is debited as far as the credit limit allows
local debit = used
if used > held + before then debit = held + before end
local freed, hexp, has_hold, sets
if ARGV[8] == '1' then
  freed, hexp, has_hold = held, '-1', 1
  redis.call('HDEL', ACC, hf)
  redis.call('ZREM', KEYS[2], ARGV[1] .. '|' .. ARGV[2] .. '|' .. res)
  sets = {B, string.format('%d:%d:', amt - debit, rsv - freed) .. c .. ':' .. x .. ':' .. l}
else
  freed = debit
  if debit > held then freed = held end
  hexp, has_hold = rexp, 0
  if freed ~= 0 then has_hold = 1 end
  sets = {B, string.format('%d:%d:', amt - debit, rsv - freed) .. c .. ':' .. x .. ':' .. l,
          hf, string.format('%d:', held - freed) .. rexp}
end
local after = before + freed - debit
local low = 0
if l ~= '' and before >= tonumber(l) and tonumber(l) > after then low = 1 end
return finish({'ok', debit, amt - debit, after, low, -debit, -freed, hexp, has_hold},
              EP .. string.format('|ok|%d|%d|%d|%d|%d|%d|', debit, amt - debit, after, low,
                                  -debit, -freed) ..
              hexp .. (has_hold == 1 and '|1|' or '|0|') .. ARGV[2] .. '|' .. res,
              debit ~= 0 or has_hold == 1, sets, oe)
