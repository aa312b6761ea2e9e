-- debit: direct debiting (no reservation), all or nothing unless partial.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 amount, 7 partial ('1')
-- op_debit(..., partial, account, B, opf, amount, now): partial a boolean
local function op_debit(acc, ep, epn, partial, account, B, opf, amount, now)
  local take = amount + 0  -- raises for a non-number, before any write (lua/reserve.lua)
  if not (take >= 0 and take <= 9007199254740991 and take % 1 == 0) then  -- (lua/reserve.lua)
    return redis.error_reply('ERR ARGV 6 is not an integer in [0, 2^53-1]')
  end
  local early, oe, _, a, amt, r, c, x, l = open_balance(acc, B, ep, epn, opf, '')
  if early then return early end
  local before = amt - r + c
  local status = nil
  if x ~= INF and x <= now + 0 then  -- (x: +inf when the balance never expires)
    status = 'expired'
  elseif take > before then
    if not partial or before <= 0 then status = 'insufficient' else take = before end
  end
  if status then
    return refuse(acc, ep, epn, opf, oe, ep .. '|' .. status .. '|0|' .. a ..
                  sfmt('|%d|0|0|0|0|0|', before) .. B)
  end
  local after = before - take
  local low = '0'
  if before >= l and l > after then low = '1' end  -- (l: -inf when none)
  local rec = ep .. sfmt('|ok|%d|%d|%d|', take, amt - take, after) .. low ..
        sfmt('|%d|0|0|0|', -take) .. B
  return write_amount(acc, account, B, ep, epn, opf, oe, rec, -take, amt, r, c, x, l)
end
