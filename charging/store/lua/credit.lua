-- credit: topup or refund; refuses a result past 2^53-1 (amount + credit_limit) as out_of_range.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 amount
-- op_credit(..., _, account, B, opf, amount)
local function op_credit(acc, ep, epn, _, account, B, opf, amount)
  local n = amount + 0  -- raises for a non-number, before any write (lua/reserve.lua)
  -- NaN or a fraction: an error (nothing written); beyond 2^53-1 (+inf too): out_of_range
  if n ~= n or (n % 1 ~= 0 and n < 9007199254740991) then
    return redis.error_reply('ERR ARGV 6 is not an integer')
  end
  local early, oe, _, a, amt, r, cl, x, l = open_balance(acc, B, ep, epn, opf, '')
  if early then return early end
  local avail = amt - r + cl
  if n < 0 or n > 9007199254740991 or amt + n + cl > 9007199254740991 then
    return refuse(acc, ep, epn, opf, oe, ep .. '|out_of_range|0|' .. a ..
                  sfmt('|%d|0|0|0|0|0|', avail) .. B)
  end
  local rec = ep .. sfmt('|ok|%d|%d|%d|0|%d|0|0|0|', n, amt + n, avail + n, n) ..
        B
  return write_amount(acc, account, B, ep, epn, opf, oe, rec, n, amt, r, cl, x, l)
end
