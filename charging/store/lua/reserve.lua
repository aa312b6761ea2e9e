-- reserve: hold an amount on a balance for a reservation (adds to it, refreshes its expiry).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 amount,
--       8 exp_us (new expiry), 9 partial ('1' grants what is available)
local function op_reserve(acc, account, B, ep, epn, now, opf, res, amount, exp, partial)
  if not epn then return redis.error_reply('ERR ARGV 3 is not a number') end
  local grant = tonumber(amount)
  if not grant or grant < 0 then return redis.error_reply('ERR ARGV 7 is not a number >= 0') end
  local hf = B .. 'h|' .. res
  local b = redis.call('HMGET', acc, opf, 'oe', B, hf)
  local rec = b[1]
  if rec and tonumber(string.sub(rec, 1, string.find(rec, '|', 1, true) - 1)) >= epn - 1 then
    return {rec}  -- replay: the record is still within the window
  end
  local oe, st = b[2], b[3]
  if not st then
    if redis.call('HEXISTS', acc, 'kind') == 0 then return {'unknown_account'} end
    return refuse(acc, ep, epn, opf, oe,
                  ep .. '|unknown_balance|0|0|0|0|0|0|0|0|' .. B .. res)
  end
  local a, r, c, x, l = string.match(st, '^([^:]*):([^:]*):([^:]*):([^:]*):(.*)$')
  local amt, rsv = a + 0, r + 0
  local before = amt - rsv + c
  local gs, status = amount, nil
  if x ~= '' and x + 0 <= tonumber(now) then
    status = 'expired'
  elseif grant > before then
    if partial ~= '1' or before <= 0 then
      status = 'insufficient'
    else
      grant = before
      gs = string.format('%d', grant)
    end
  end
  if status then
    return refuse(acc, ep, epn, opf, oe, ep .. '|' .. status .. '|0|' .. a ..
                  string.format('|%d|0|0|0|0|0|', before) .. B .. res)
  end
  if not tonumber(exp) then return redis.error_reply('ERR ARGV 8 is not a number') end
  -- (checked before the first write: the deferred ZADD must not fail at the end of a batch)
  local hold = gs
  if b[4] then hold = string.format('%d', string.match(b[4], '^[^:]*') + grant) end
  local after = before - grant
  local low = '0'
  if l ~= '' and before >= l + 0 and l + 0 > after then low = '1' end
  rec = ep .. '|ok|' .. gs .. '|' .. a .. string.format('|%d|', after) .. low .. '|0|' ..
        gs .. '|' .. exp .. '|1|' .. B .. res
  redis.call('HSET', acc, B, a .. string.format(':%d:', rsv + grant) .. c .. ':' .. x .. ':' .. l,
             hf, hold .. ':' .. exp, opf, rec)
  if oe ~= ep then epoch_slow(acc, ep, epn, opf, oe) end
  IXC[account .. '|' .. B .. res] = exp
  NUNJ = NUNJ + 1
  UNJ[NUNJ] = account .. opf
  return rec
end
