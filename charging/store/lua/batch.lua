-- batch: run many single-balance ops (reserve, commit, release, debit, credit) in ONE call, in
-- order, and return one reply per op: amortises the fixed per-EVALSHA cost (~40k instructions
-- even for an empty script) over the ops of one client loop tick.
-- KEYS: 3 per op, in op order: KEYS[3i-2] {acct:ID}:a, KEYS[3i-1] {<slot tag>}:ix:x,
--       KEYS[3i] {<slot tag>}:unj (exactly the single-op scripts' KEYS, lua/_prelude.lua)
-- ARGV: per op, in the same order: <op letter> ('r' reserve, 'c' commit, 'l' release,
--       'd' debit, 't' credit), <n>, then the n ARGV of that op's single-op script
--       (account, balance, epoch, now_us, key, ...: see that script's header)
-- Returns an array with one element per op: exactly what the single-op script returns (a
-- fresh result array, a replayed record string, {'unknown_account'}), or an error reply for
-- that op alone (bad arguments, or a runtime error caught by pcall).
-- The op bodies are NOT in this file: charging/store/redis_lua.py prepends, for each op,
-- "local function op_<name>(KEYS, ARGV)" + _prelude.lua + <name>.lua + "end", so the logic
-- exists once and the single-op scripts and this batch run the same code.
-- A malformed layout (unknown letter, bad n, KEYS not 3 per op) fails the whole call before any
-- op runs. Isolation: each op runs under pcall, so an op that raises fails alone. Each op body
-- parses every numeric ARGV it uses (epoch, now, amounts, expiry) ONCE, before its first write,
-- and answers 'ERR ARGV <i> is not a number' for a bad one (lua/_prelude.lua: bad()): with
-- them valid, and the account fields written only by these scripts (canonical decimal strings),
-- the bodies cannot raise after their first write (their parsing, lookups and arithmetic come
-- first; after that only string.format('%d') of numbers, concatenation of strings and
-- redis.call on keys the op was given); Redis 7 does not refuse a script's writes for OOM once
-- it has written. So an op is applied wholly or not at all, and a batch never stops half way.
-- (The numbers used to be checked here too, a second strtod of each: ~10k of the ~115k
-- instructions an op cost under callgrind.)
local OPS = {r = op_reserve, c = op_commit, l = op_release, d = op_debit, t = op_credit}
local nargv, nkeys = #ARGV, #KEYS
-- the layout is checked whole BEFORE any op runs: a malformed call fails without writing
local p, k, ns = 1, 1, {}
while p <= nargv do
  local n = tonumber(ARGV[p + 1])
  if not OPS[ARGV[p]] or not n or n < 0 or p + 1 + n > nargv or k + 2 > nkeys then
    return redis.error_reply('ERR batch: malformed op at ARGV[' .. p .. ']')
  end
  ns[#ns + 1] = n
  p, k = p + 2 + n, k + 3
end
if k - 1 ~= nkeys then return redis.error_reply('ERR batch: KEYS do not match the ops') end
local out = {}
p, k = 1, 1
for j = 1, #ns do
  local n = ns[j]
  local ok, r = pcall(OPS[ARGV[p]], {KEYS[k], KEYS[k + 1], KEYS[k + 2]},
                      {unpack(ARGV, p + 2, p + 1 + n)})
  if ok or (type(r) == 'table' and r.err) then
    out[j] = r
  else
    out[j] = redis.error_reply('ERR batch: ' .. tostring(r))
  end
  p, k = p + 2 + n, k + 3
end
return out
