-- debit: direct debiting (no reservation), all or nothing unless partial.
-- KEYS: see _prelude.lua (1 balance, 2 op, 3 unj, 4 ix:x, 5 meta)
-- ARGV: 1 account, 2 balance, 3 retention_ms, 4 now_us, 5 key, 6 amount, 7 partial ('1')
local r = replay()
if r then return r end
local bal = ARGV[2]
local b = redis.call('HMGET', KEYS[1], 'amt', 'rsv', 'cl', 'exp', 'low')
if not b[1] then return missing(bal, '') end
local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]), tonumber(b[3])
local before = amt - rsv + cl
if b[4] and tonumber(b[4]) <= tonumber(ARGV[4]) then
  return finish({'expired', 0, amt, before, 0, 0, 0, 0, 0, bal, ''}, false)
end
local want = tonumber(ARGV[6])
local take = want
if want > before then
  if ARGV[7] ~= '1' or before <= 0 then
    return finish({'insufficient', 0, amt, before, 0, 0, 0, 0, 0, bal, ''}, false)
  end
  take = before
end
if take ~= 0 then redis.call('HSET', KEYS[1], 'amt', fmt(amt - take)) end
local after = before - take
return finish({'ok', take, amt - take, after, low_crossed(b[5], before, after), -take, 0, 0, 0,
               bal, ''}, take ~= 0)
