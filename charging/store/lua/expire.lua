-- expire: release the reservations of one hash slot whose expiry <= now (the TTL sweep).
-- KEYS: 1 {<slot tag>}:ix:x, 2 {<slot tag>}:unj (set of "<account>|<op key>" not yet journaled)
-- ARGV: 1 now_us, 2 limit, 3 retention_ms
-- Members of ix:x are "<account>|<balance>|<reservation>" (account and balance ids hold no '|').
-- The accounts' keys ({acct:ID}:b:<balance>, {acct:ID}:op:<key>) are derived
-- here; every one of them lives in this same hash slot (that is how the slot tag was chosen),
-- so this stays correct on Redis Cluster.
-- Returns a list of {account, key, result...} with result as in _prelude.lua. The op key is
-- "expire:<balance>:<reservation>:<exp_us>" (deterministic: a repeated sweep finds it).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local p1 = string.find(member, '|', 1, true)
  local p2 = string.find(member, '|', p1 + 1, true)
  local account = string.sub(member, 1, p1 - 1)
  local bal, res = string.sub(member, p1 + 1, p2 - 1), string.sub(member, p2 + 1)
  local pre = '{acct:' .. account .. '}'
  local bkey = pre .. ':b:' .. bal
  local rf = 'r:' .. res
  local b = redis.call('HMGET', bkey, 'amt', 'rsv', 'cl', rf)
  if b[1] and b[4] then
    local sep = string.find(b[4], ':', 1, true)
    local held, rexp = tonumber(string.sub(b[4], 1, sep - 1)), string.sub(b[4], sep + 1)
    local amt, rsv, cl = tonumber(b[1]), tonumber(b[2]) - held, tonumber(b[3])
    redis.call('HDEL', bkey, rf)
    redis.call('HSET', bkey, 'rsv', string.format('%d', rsv))
    local key = 'expire:' .. bal .. ':' .. res .. ':' .. rexp
    local result = {'ok', 0, amt, amt - rsv + cl, 0, 0, -held, -1, 1, bal, res}
    redis.call('SET', pre .. ':op:' .. key, cmsgpack.pack(result), 'PX', ARGV[3])
    redis.call('SADD', KEYS[2], account .. '|' .. key)
    table.insert(result, 1, key)
    table.insert(result, 1, account)
    out[#out + 1] = result
  end
end
return out
