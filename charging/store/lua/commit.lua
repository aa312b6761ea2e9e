-- commit: debit what was used against a reservation; release the rest (or keep it).
-- KEYS: see _prelude.lua (1 balance, 2 op, 3 unj, 4 ix:x, 5 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 reservation, 7 used,
--       8 release_rest ('1' removes the reservation)
local r = replay()
if r then return r end
local bal, res = ARGV[2], ARGV[6]
local rf = 'r:' .. res
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl', 'low', rf)
if not b[1] then return missing(bal, res) end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local before = amt - rsv + cl
if not b[5] then
  return finish({'unknown_reservation', 0, amt, before, 0, 0, 0, 0, 0, bal, res}, false)
end
local held, rexp = held_of(b[5])
local used = tonumber(ARGV[7])
-- used beyond the hold is debited as far as the credit limit allows
local debit = used
if used > held + before then debit = held + before end
local freed, hexp, has_hold
if ARGV[8] == '1' then
  freed, hexp, has_hold = held, -1, 1
  redis.call('HDEL', KEYS[1], rf)
  redis.call('HSET', KEYS[1], 'amt', fmt(amt - debit), 'rsv', fmt(rsv - freed))
  redis.call('ZREM', KEYS[4], ARGV[1] .. '|' .. bal .. '|' .. res)
else
  freed = debit
  if debit > held then freed = held end
  hexp, has_hold = tonumber(rexp), 0
  if freed ~= 0 then has_hold = 1 end
  redis.call('HSET', KEYS[1], 'amt', fmt(amt - debit), 'rsv', fmt(rsv - freed),
             rf, fmt(held - freed) .. ':' .. rexp)
end
local after = before + freed - debit
return finish({'ok', debit, amt - debit, after, low_crossed(b[4], before, after), -debit, -freed,
               hexp, has_hold, bal, res}, debit ~= 0 or has_hold == 1)
