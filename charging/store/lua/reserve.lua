-- reserve: hold an amount on a balance for a reservation (adds to it, refreshes its expiry).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 amount,
--       8 exp_us (new expiry), 9 partial ('1' grants what is available)
-- (exp_us is parsed by the ZADD, reserve's first write: a bad one fails before any write)
local res = ARGV[6]
local hf = B .. 'h|' .. res
if not EPN then return redis.error_reply('ERR ARGV 3 is not a number') end
local grant = tonumber(ARGV[7])
if not grant then return redis.error_reply('ERR ARGV 7 is not a number') end
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
local gs, status = ARGV[7], nil
if x ~= '' and tonumber(x) <= tonumber(ARGV[4]) then
  status = 'expired'
elseif grant > before then
  if ARGV[9] ~= '1' or before <= 0 then
    status = 'insufficient'
  else
    grant = before
    gs = string.format('%d', grant)
  end
end
if status then
  return finish({status, 0, amt, before, 0, 0, 0, 0, 0},
                EP .. '|' .. status .. '|0|' .. a .. string.format('|%d|0|0|0|0|0|', before) ..
                ARGV[2] .. '|' .. res, false, {}, oe)
end
local held = 0
if b[4] then held = tonumber(string.match(b[4], '^[^:]*')) end
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1] .. '|' .. ARGV[2] .. '|' .. res)
local after = before - grant
local low = 0
if l ~= '' and before >= tonumber(l) and tonumber(l) > after then low = 1 end
return finish({'ok', grant, amt, after, low, 0, grant, ARGV[8], 1},
              EP .. '|ok|' .. gs .. '|' .. a .. string.format('|%d|%d|0|', after, low) .. gs ..
              '|' .. ARGV[8] .. '|1|' .. ARGV[2] .. '|' .. res, true,
              {B, a .. string.format(':%d:', rsv + grant) .. c .. ':' .. x .. ':' .. l,
               hf, string.format('%d:', held + grant) .. ARGV[8]}, oe)
