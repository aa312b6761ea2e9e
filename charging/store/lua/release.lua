-- release: remove a reservation, returning its hold to the balance.
-- KEYS: see _prelude.lua (1 balance, 2 reservations, 3 expiries, 4 op, 5 unj, 6 ix:x, 7 ix:u, 8 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 reservation
local r = replay()
if r then return r end
local bal, res = ARGV[2], ARGV[6]
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl')
if not b[1] then return finish({'unknown_balance', 0, 0, 0, 0, 0, 0, 0, 0, bal, res}, false) end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local field = bal .. '|' .. res
local cur = redis.call('HGET', KEYS[2], field)
if not cur then
  return finish({'unknown_reservation', 0, amt, amt - rsv + cl, 0, 0, 0, 0, 0, bal, res}, false)
end
local held = tonumber(string.sub(cur, 1, string.find(cur, ':', 1, true) - 1))
redis.call('HDEL', KEYS[2], field)
redis.call('ZREM', KEYS[3], field)
if held ~= 0 then redis.call('HINCRBY', KEYS[1], 'rsv', fmt(-held)) end
return finish({'ok', 0, amt, amt - rsv + held + cl, 0, 0, -held, -1, 1, bal, res}, true)
