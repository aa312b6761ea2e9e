-- create: create an account and its balances; identical repeat -> 'same', else 'different'.
-- KEYS: 1 {acct:ID}:m (meta hash), 2 {acct:ID}:bl (balance ids, in creation order)
-- ARGV: 1 kind, 2 spec (canonical JSON of the balances), 3 identities (canonical JSON),
--       4 key prefix "{acct:ID}", then 8 per balance: id, kind, currency, amount,
--       credit_limit, priority, expires_us ('' none), low_threshold ('' none)
local cur = redis.call('HMGET', KEYS[1], 'spec', 'ids')
if cur[1] then
  if cur[1] == ARGV[2] and cur[2] == ARGV[3] then return 'same' end
  return 'different'
end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'spec', ARGV[2], 'ids', ARGV[3])
for i = 5, #ARGV, 8 do
  local k = ARGV[4] .. ':b:' .. ARGV[i]
  redis.call('DEL', k)
  redis.call('HSET', k, 'kind', ARGV[i + 1], 'cur', ARGV[i + 2], 'amt', ARGV[i + 3], 'rsv', '0',
             'cl', ARGV[i + 4], 'pri', ARGV[i + 5])
  if ARGV[i + 6] ~= '' then redis.call('HSET', k, 'exp', ARGV[i + 6]) end
  if ARGV[i + 7] ~= '' then redis.call('HSET', k, 'low', ARGV[i + 7]) end
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
return 'created'
