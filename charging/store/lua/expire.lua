-- expire: release the reservations of one hash slot whose expiry <= now (the TTL sweep).
-- KEYS: 1 {<slot tag>}:ix:x, 2 {<slot tag>}:unj (set of "<account>|<op key>" not yet journaled)
-- ARGV: 1 now_us, 2 limit, 3 idempotency epoch of now (floor(now / retention))
-- Members of ix:x are "<account>|<balance>|<reservation>" (account and balance ids hold no '|').
-- The account hash {acct:ID}:a is derived here; it lives in this same hash slot (that is how
-- the slot tag was chosen), so this stays correct on Redis Cluster.
-- Returns a list of {account, key, status, granted, amount_after, available_after, low,
-- effect, hold, hold_exp_us, has_hold, balance, reservation}. The op key is
-- "expire:<balance>:<reservation>:<exp_us>" (deterministic: a repeated sweep finds it).
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local out = {}
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local p1 = string.find(member, '|', 1, true)
  local p2 = string.find(member, '|', p1 + 1, true)
  local account = string.sub(member, 1, p1 - 1)
  local bal, res = string.sub(member, p1 + 1, p2 - 1), string.sub(member, p2 + 1)
  local acc = '{acct:' .. account .. '}:a'
  local b = bal .. '|'
  local hf = b .. 'h|' .. res
  local v = redis.call('HMGET', acc, b, hf)
  if v[1] and v[2] and v[2] ~= '' then  -- ('': released, lua/_prelude.lua)
    local hs, rexp = string.match(v[2], '^([^:]*):(.*)$')
    local held = tonumber(hs)
    local a, amt, r, cl, x, l = state_read(v[1])  -- (lua/_prelude.lua)
    local rsv = r - held
    local key = 'expire:' .. bal .. ':' .. res .. ':' .. rexp
    redis.call('HDEL', acc, hf)
    redis.call('HSET', acc, b, state_write(a, amt, rsv, cl, x, l), '|' .. key,
               string.format('%s|ok|0|%s|%d|0|0|%d|-1|1|%s|%s', ARGV[3], a, amt - rsv + cl,
                             -held, bal, res))
    redis.call('SADD', KEYS[2], account .. '|' .. key)
    out[#out + 1] = {account, key, 'ok', 0, amt, amt - rsv + cl, 0, 0, -held, -1, 1, bal, res}
  end
end
return out
