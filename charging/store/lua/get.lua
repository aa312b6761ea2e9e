-- get: an account and all its balances in one consistent read.
-- KEYS: 1 {acct:ID}:a (the account hash)
-- ARGV: none
-- Returns {kind, identities_json, then 8 per balance: id, kind, currency ('' none), amt, rsv,
-- cl, pri, exp ('' none)} or nil when the account does not exist.
local m = redis.call('HMGET', KEYS[1], 'kind', 'ids', 'bl')
if not m[1] then return false end
local out = {m[1], m[2]}
if m[3] == '' then return out end
local ids, fields = {}, {}
for id in string.gmatch(m[3], '[^|]+') do
  ids[#ids + 1] = id
  for _, f in ipairs({'', 'k', '$', 'p'}) do fields[#fields + 1] = id .. '|' .. f end
end
local v = redis.call('HMGET', KEYS[1], unpack(fields))
for i, id in ipairs(ids) do
  local st, kind, cur, pri = v[i * 4 - 3], v[i * 4 - 2], v[i * 4 - 1], v[i * 4]
  local a, _, r, c, x = state_read(st)  -- (lua/_prelude.lua)
  r, c = string.format('%d', r), string.format('%d', c)
  x = x == INF and '' or string.format('%d', x)
  for _, f in ipairs({id, kind, cur or '', a, r, c, pri, x}) do out[#out + 1] = f end
end
return out
