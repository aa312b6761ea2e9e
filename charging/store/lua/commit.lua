-- commit: debit what was used against a reservation; release the rest (or keep it).
-- KEYS: see _prelude.lua (1 balance, 2 reservations, 3 expiries, 4 op, 5 unj, 6 ix:x, 7 ix:u, 8 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 reservation, 7 used,
--       8 release_rest ('1' removes the reservation)
local r = replay()
if r then return r end
local bal, res = ARGV[2], ARGV[6]
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl', 'low')
if not b[1] then return finish({'unknown_balance', 0, 0, 0, 0, 0, 0, 0, 0, bal, res}, false) end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local before = amt - rsv + cl
local field = bal .. '|' .. res
local cur = redis.call('HGET', KEYS[2], field)
if not cur then
  return finish({'unknown_reservation', 0, amt, before, 0, 0, 0, 0, 0, bal, res}, false)
end
local sep = string.find(cur, ':', 1, true)
local held, rexp = tonumber(string.sub(cur, 1, sep - 1)), string.sub(cur, sep + 1)
local used = tonumber(ARGV[7])
-- used beyond the hold is debited as far as the credit limit allows
local debit = used
if used > held + before then debit = held + before end
local freed, hexp, has_hold
if ARGV[8] == '1' then
  freed, hexp, has_hold = held, -1, 1
  redis.call('HDEL', KEYS[2], field)
  redis.call('ZREM', KEYS[3], field)
else
  freed = debit
  if debit > held then freed = held end
  hexp, has_hold = tonumber(rexp), 0
  if freed ~= 0 then has_hold = 1 end
  redis.call('HSET', KEYS[2], field, fmt(held - freed) .. ':' .. rexp)
end
if freed ~= 0 then redis.call('HINCRBY', KEYS[1], 'rsv', fmt(-freed)) end
if debit ~= 0 then redis.call('HINCRBY', KEYS[1], 'amt', fmt(-debit)) end
local after = before + freed - debit
return finish({'ok', debit, amt - debit, after, low_crossed(b[4], before, after), -debit, -freed,
               hexp, has_hold, bal, res}, debit ~= 0 or has_hold == 1)
