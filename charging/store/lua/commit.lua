-- commit: debit what was used against a reservation; release the rest (or keep it).
-- KEYS: see _prelude.lua (1 account hash, 2 ix:x, 3 unj)
-- ARGV: 1 account, 2 balance, 3 epoch, 4 now_us, 5 key, 6 reservation, 7 used,
--       8 release_rest ('1' removes the reservation)
local res = ARGV[6]
local hf = B .. 'h|' .. res
local b = redis.call('HMGET', ACC, OPF, 'oe', B .. 'a', B .. 'r', B .. 'c', B .. 'l', hf)
if b[1] then
  local r = replay(b[1])
  if r then return r end
end
local oe = b[2]
if not b[3] then return missing(oe, res) end
local amt, rsv, cl = tonumber(b[3]), tonumber(b[4]), tonumber(b[5])
local before = amt - rsv + cl
if not b[7] then return refuse('unknown_reservation', amt, b[3], before, oe, res) end
local held, rexp = held_of(b[7])
local used = tonumber(ARGV[7])
-- used beyond the hold is debited as far as the credit limit allows
local debit = used
if used > held + before then debit = held + before end
local freed, hexp, has_hold, sets
if ARGV[8] == '1' then
  freed, hexp, has_hold = held, '-1', 1
  redis.call('HDEL', ACC, hf)
  redis.call('ZREM', KEYS[2], ARGV[1] .. '|' .. ARGV[2] .. '|' .. res)
  sets = {B .. 'a', fmt(amt - debit), B .. 'r', fmt(rsv - freed)}
else
  freed = debit
  if debit > held then freed = held end
  hexp, has_hold = rexp, 0
  if freed ~= 0 then has_hold = 1 end
  sets = {B .. 'a', fmt(amt - debit), B .. 'r', fmt(rsv - freed),
          hf, fmt(held - freed) .. ':' .. rexp}
end
local after = before + freed - debit
local low, low_s = low_crossed(b[6], before, after)
return finish({'ok', debit, amt - debit, after, low, -debit, -freed, hexp, has_hold},
              EP .. '|ok|' .. string.format('%d|%d|%d|', debit, amt - debit, after) .. low_s ..
              string.format('|%d|%d|', -debit, -freed) .. hexp .. (has_hold == 1 and '|1|' or '|0|') ..
              ARGV[2] .. '|' .. res, debit ~= 0 or has_hold == 1, sets, oe)
