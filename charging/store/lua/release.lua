-- release: remove a reservation, returning its hold to the balance.
-- KEYS: see _prelude.lua (1 balance, 2 op, 3 unj, 4 ix:x, 5 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 reservation
local r = replay()
if r then return r end
local bal, res = ARGV[2], ARGV[6]
local rf = 'r:' .. res
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl', rf)
if not b[1] then return missing(bal, res) end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
if not b[4] then
  return finish({'unknown_reservation', 0, amt, amt - rsv + cl, 0, 0, 0, 0, 0, bal, res}, false)
end
local held = held_of(b[4])
redis.call('HDEL', KEYS[1], rf)
redis.call('HSET', KEYS[1], 'rsv', fmt(rsv - held))
redis.call('ZREM', KEYS[4], ARGV[1] .. '|' .. bal .. '|' .. res)
return finish({'ok', 0, amt, amt - rsv + held + cl, 0, 0, -held, -1, 1, bal, res}, true)
