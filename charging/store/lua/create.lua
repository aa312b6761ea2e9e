-- create: create an account and its balances; identical repeat -> 'same', else 'different'.
-- KEYS: 1 {acct:ID}:a (the account hash, layout in charging/store/redis_keys.py),
--       2 {T}:ix:x (its reservation index; optional: see the end)
-- ARGV: 1 kind, 2 spec (canonical JSON of the balances), 3 identities (canonical JSON),
--       4 balance ids joined by '|' (creation order), then 8 per balance: id, kind, currency,
--       amount, credit_limit, priority, expires_us ('' none), low_threshold ('' none)
local cur = redis.call('HMGET', KEYS[1], 'spec', 'ids')
if cur[1] then
  if cur[1] == ARGV[2] and cur[2] == ARGV[3] then return 'same' end
  return 'different'
end
redis.call('DEL', KEYS[1])  -- leftovers of a half-written account (none in practice)
-- 'enc': a filler longer than hash-max-listpack-value (default 64; 7.0 converts a hash with a
-- longer value to a real hash table and never back), so the account is a hashtable from the
-- start: in a listpack every field access is a linear scan, and an account whose op records
-- are short (debits of event balances: ~35 bytes) would stay one up to
-- hash-max-listpack-entries (512) records: HMGET of 3 fields 12.6 us at 500 records vs
-- 2.2 us as a hashtable (measured). An operator who raises hash-max-listpack-value past 200
-- gives that back.
local sets = {'kind', ARGV[1], 'spec', ARGV[2], 'ids', ARGV[3], 'bl', ARGV[4],
              'enc', string.rep('-', 200)}
for i = 5, #ARGV, 8 do
  local b = ARGV[i] .. '|'
  -- the state in one field (what every op reads: lua/_prelude.lua)
  local x, l = ARGV[i + 6], ARGV[i + 7]
  sets[#sets + 1] = b
  sets[#sets + 1] = state_write(ARGV[i + 3], ARGV[i + 3] + 0, 0, ARGV[i + 4] + 0,
                                x == '' and INF or x + 0, l == '' and -INF or l + 0)
  -- and what only get() reads
  for _, kv in ipairs({{'k', ARGV[i + 1]}, {'$', ARGV[i + 2]}, {'p', ARGV[i + 5]}}) do
    sets[#sets + 1] = b .. kv[1]
    sets[#sets + 1] = kv[2]
  end
end
redis.call('HSET', KEYS[1], unpack(sets))
if KEYS[2] then
  -- The same trick for the reservation index: a member longer than zset-max-listpack-value
  -- makes the zset a skiplist (and keeps the key from vanishing whenever the last hold goes).
  -- A listpack zset is scanned linearly on every ZADD/ZREM: ~10k instructions per member
  -- with ~100 live holds (callgrind). Its score +inf keeps it out of every expiry range.
  redis.call('ZADD', KEYS[2], 'inf', string.rep('~', 80))
end
return 'created'
