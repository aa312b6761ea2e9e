-- commit: debit what was used against a reservation; release the rest (or keep it).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 used,
--       8 release_rest ('1' removes the reservation)
-- op_commit(..., release_rest, account, B, opf, res, used): release_rest a boolean
local function op_commit(acc, ep, epn, release_rest, account, B, opf, res, used)
  local debit = used + 0  -- raises for a non-number, before any write (lua/reserve.lua)
  if not (debit >= 0 and debit <= 9007199254740991 and debit % 1 == 0) then  -- (reserve.lua)
    return redis.error_reply('ERR ARGV 7 is not an integer in [0, 2^53-1]')
  end
  local hf = B .. 'h|' .. res
  local early, oe, hv, a, amt, rsv, c, x, l = open_balance(acc, B, ep, epn, opf, res, hf)
  if early then return early end
  local before = amt - rsv + c
  if not hv then
    return refuse(acc, ep, epn, opf, oe, ep .. '|unknown_reservation|0|' .. a ..
                  sfmt('|%d|0|0|0|0|0|', before) .. B .. res)
  end
  local hs, rexp = smatch(hv, '^([^:]*):(.*)$')
  local held = hs + 0
  -- used beyond the hold is debited as far as the credit limit allows
  local ds = used
  if debit > held + before then
    debit = held + before
    ds = sfmt('%d', debit)
  end
  local freed, fs, hexp, has_hold
  if release_rest then
    freed, fs, hexp, has_hold = held, hs, '-1', '1'
  else
    freed, fs, hexp, has_hold = debit, ds, rexp, '1'
    if debit > held then freed, fs = held, hs end
    if freed == 0 then has_hold = '0' end
  end
  local after = before + freed - debit
  local low = '0'
  if before >= l and l > after then low = '1' end  -- (l: -inf when none)
  local at = a
  if debit ~= 0 then at = sfmt('%d', amt - debit) end
  local rec = ep .. '|ok|' .. ds .. '|' .. at .. sfmt('|%d|', after) .. low ..
        (debit == 0 and '|0|' or '|-' .. ds .. '|') .. (freed == 0 and '0|' or '-' .. fs .. '|') ..
        hexp .. '|' .. has_hold .. '|' .. B .. res
  local state = spack('<Bddddd', 0, amt - debit, rsv - freed, c, x, l) .. at  -- (state_write)
  if release_rest then
    rcall('HSET', acc, B, state, hf, '', opf, rec)  -- hf '': released (open_balance)
    IXC[account .. '|' .. B .. res] = false
  else
    rcall('HSET', acc, B, state, hf, sfmt('%d:', held - freed) .. rexp, opf, rec)
  end
  if oe ~= ep then epoch_slow(acc, ep, epn, opf, oe) end
  if debit ~= 0 or has_hold == '1' then
    NUNJ = NUNJ + 1
    UNJ[NUNJ] = account .. opf
  end
  return rec
end
