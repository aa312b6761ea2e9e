-- get: an account and all its balances in one consistent read.
-- KEYS: 1 {acct:ID}:m, 2 {acct:ID}:bl
-- ARGV: 1 key prefix "{acct:ID}" (balance hashes {acct:ID}:b:<id> share the slot)
-- Returns {kind, identities_json, then 8 per balance: id, kind, currency ('' none), amt, rsv,
-- cl, pri, exp ('' none)} or nil when the account does not exist.
local m = redis.call('HMGET', KEYS[1], 'kind', 'ids')
if not m[1] then return false end
local out = {m[1], m[2]}
for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
  local f = redis.call('HMGET', ARGV[1] .. ':b:' .. id, 'kind', 'cur', 'amt', 'rsv', 'cl', 'pri',
                       'exp')
  out[#out + 1] = id
  for j = 1, 7 do out[#out + 1] = f[j] or '' end
end
return out
