-- credit: topup or refund; refuses a result past 2^53-1 (amount + credit_limit) as out_of_range.
-- KEYS: see _prelude.lua (1 balance, 2 op, 3 unj, 4 ix:x, 5 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 amount
local r = replay()
if r then return r end
local bal = ARGV[2]
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl')
if not b[1] then return missing(bal, '') end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local x = tonumber(ARGV[6])
if x < 0 or x > 9007199254740991 or amt + x + cl > 9007199254740991 then
  return finish({'out_of_range', 0, amt, amt - rsv + cl, 0, 0, 0, 0, 0, bal, ''}, false)
end
if x ~= 0 then redis.call('HSET', KEYS[1], 'amt', fmt(amt + x)) end
return finish({'ok', x, amt + x, amt + x - rsv + cl, 0, x, 0, 0, 0, bal, ''}, x ~= 0)
