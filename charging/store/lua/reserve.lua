-- reserve: hold an amount on a balance for a reservation (adds to it, refreshes its expiry).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 amount,
--       8 exp_us (new expiry), 9 partial ('1' grants what is available)
-- op_reserve(..., partial, account, B, opf, res, amount, exp, now): partial a boolean (the
-- function's argument order is the batch's ARGV order: lua/batch.lua)
local function op_reserve(acc, ep, epn, partial, account, B, opf, res, amount, exp, now)
  -- ARGV numbers: 'x + 0' raises for a non-number (one strtod; tonumber() costs two), before
  -- any write: the caller answers it as this op's error (lua/batch.lua)
  -- 'x + 0' also takes 'nan', 'inf', '1.5' (strtod): an amount must be an integer in
  -- [0, 2^53-1] (NaN fails every comparison; x % 1 is NaN for +-inf)
  local grant = amount + 0
  if not (grant >= 0 and grant <= 9007199254740991 and grant % 1 == 0) then
    return redis.error_reply('ERR ARGV 7 is not an integer in [0, 2^53-1]')
  end
  -- checked here: the deferred ZADD must not fail at the end of a batch (it refuses NaN)
  if (exp + 0) % 1 ~= 0 then return redis.error_reply('ERR ARGV 8 is not an integer') end
  local hf = B .. 'h|' .. res
  local early, oe, hv, a, amt, rsv, c, x, l = open_balance(acc, B, ep, epn, opf, res, hf)
  if early then return early end
  local before = amt - rsv + c
  local gs, status = amount, nil
  if x ~= INF and x <= now + 0 then  -- (x: +inf when the balance never expires)
    status = 'expired'
  elseif grant > before then
    if not partial or before <= 0 then
      status = 'insufficient'
    else
      grant = before
      gs = sfmt('%d', grant)
    end
  end
  if status then
    return refuse(acc, ep, epn, opf, oe, ep .. '|' .. status .. '|0|' .. a ..
                  sfmt('|%d|0|0|0|0|0|', before) .. B .. res)
  end
  local hold = gs
  if hv then hold = sfmt('%d', smatch(hv, '^[^:]*') + grant) end
  local after = before - grant
  local low = '0'
  if before >= l and l > after then low = '1' end  -- (l: -inf when none)
  local rec = ep .. '|ok|' .. gs .. '|' .. a .. sfmt('|%d|', after) .. low .. '|0|' ..
        gs .. '|' .. exp .. '|1|' .. B .. res
  -- (state_write inlined: lua/_prelude.lua)
  rcall('HSET', acc, B, spack('<Bddddd', 0, amt, rsv + grant, c, x, l) .. a, hf,
        hold .. ':' .. exp, opf, rec)
  if oe ~= ep then epoch_slow(acc, ep, epn, opf, oe) end
  IXC[account .. '|' .. B .. res] = exp
  NUNJ = NUNJ + 1
  UNJ[NUNJ] = account .. opf
  return rec
end
