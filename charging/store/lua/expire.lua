-- expire: release one account's reservations whose expiry <= now (TTL sweep), re-index it.
-- KEYS: 1 {acct:ID}:r, 2 {acct:ID}:x, 3 {<slot tag>}:ix:x, 4 {acct:ID}:unj, 5 {<slot tag>}:ix:u
-- ARGV: 1 account, 2 now_us, 3 limit, 4 retention_ms, 5 key prefix "{acct:ID}"
-- Balance hashes and op keys ({acct:ID}:b:<balance>, {acct:ID}:op:<key>) are derived here from
-- ARGV[5]; they share the account's hash slot, so this stays correct on Redis Cluster.
-- Returns a list of {key, result...} with result as in _prelude.lua. The op key is
-- "expire:<balance>:<reservation>:<exp_us>" (deterministic: a repeated sweep finds it).
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
local out = {}
for _, field in ipairs(due) do
  local cur = redis.call('HGET', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
  if cur then
    local sep = string.find(cur, ':', 1, true)
    local held, rexp = tonumber(string.sub(cur, 1, sep - 1)), string.sub(cur, sep + 1)
    local p = string.find(field, '|', 1, true)
    local bal, res = string.sub(field, 1, p - 1), string.sub(field, p + 1)
    local bkey = ARGV[5] .. ':b:' .. bal
    redis.call('HDEL', KEYS[1], field)
    if held ~= 0 then redis.call('HINCRBY', bkey, 'rsv', string.format('%d', -held)) end
    local b = redis.call('HMGET', bkey, 'amt', 'rsv', 'cl')
    local amt = tonumber(b[1])
    local key = 'expire:' .. bal .. ':' .. res .. ':' .. rexp
    local result = {'ok', 0, amt, amt - tonumber(b[2]) + tonumber(b[3]), 0, 0, -held, -1, 1,
                    bal, res}
    redis.call('SET', ARGV[5] .. ':op:' .. key, cmsgpack.pack(result), 'PX', ARGV[4])
    redis.call('SADD', KEYS[4], key)
    table.insert(result, 1, key)
    out[#out + 1] = result
  end
end
if #out > 0 then redis.call('SADD', KEYS[5], ARGV[1]) end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], first[2], ARGV[1])
end
return out
