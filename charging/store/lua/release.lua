-- release: remove a reservation, returning its hold to the balance.
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation
-- op_release(..., _, account, B, opf, res)
local function op_release(acc, ep, epn, _, account, B, opf, res)
  local hf = B .. 'h|' .. res
  local early, oe, hv, a, amt, rsv, c, x, l = open_balance(acc, B, ep, epn, opf, res, hf)
  if early then return early end
  if not hv then
    return refuse(acc, ep, epn, opf, oe, ep .. '|unknown_reservation|0|' .. a ..
                  sfmt('|%d|0|0|0|0|0|', amt - rsv + c) .. B .. res)
  end
  local hs = smatch(hv, '^[^:]*')
  local held = hs + 0
  local rec = ep .. '|ok|0|' .. a .. sfmt('|%d|0|0|', amt - rsv + held + c) ..
        (held == 0 and '0' or '-' .. hs) .. '|-1|1|' .. B .. res
  -- hf '': released (open_balance)
  rcall('HSET', acc, B, state_write(a, amt, rsv - held, c, x, l), hf, '', opf, rec)
  if oe ~= ep then epoch_slow(acc, ep, epn, opf, oe) end
  IXC[account .. '|' .. B .. res] = false
  NUNJ = NUNJ + 1
  UNJ[NUNJ] = account .. opf
  return rec
end
