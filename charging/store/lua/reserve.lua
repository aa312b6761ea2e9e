-- reserve: hold an amount on a balance for a reservation (adds to it, refreshes its expiry).
-- KEYS: see _prelude.lua (1 balance, 2 op, 3 unj, 4 ix:x, 5 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 reservation, 7 amount,
--       8 exp_us (new expiry), 9 partial ('1' grants what is available)
local r = replay()
if r then return r end
local bal, res = ARGV[2], ARGV[6]
local rf = 'r:' .. res
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl', 'exp', 'low', rf)
if not b[1] then return missing(bal, res) end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local before = amt - rsv + cl
if b[4] and tonumber(b[4]) <= tonumber(ARGV[4]) then
  return finish({'expired', 0, amt, before, 0, 0, 0, 0, 0, bal, res}, false)
end
local want = tonumber(ARGV[7])
local grant = want
if want > before then
  if ARGV[9] ~= '1' or before <= 0 then
    return finish({'insufficient', 0, amt, before, 0, 0, 0, 0, 0, bal, res}, false)
  end
  grant = before
end
local held = 0
if b[6] then held = held_of(b[6]) end
redis.call('HSET', KEYS[1], 'rsv', fmt(rsv + grant), rf, fmt(held + grant) .. ':' .. ARGV[8])
redis.call('ZADD', KEYS[4], ARGV[8], ARGV[1] .. '|' .. bal .. '|' .. res)
local after = before - grant
return finish({'ok', grant, amt, after, low_crossed(b[5], before, after), 0, grant,
               tonumber(ARGV[8]), 1, bal, res}, true)
