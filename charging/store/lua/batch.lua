-- batch: run many single-balance ops (reserve, commit, release, debit, credit) in ONE call, in
-- order, and return one reply per op: amortises the fixed per-EVALSHA cost (~40k instructions
-- even for an empty script) and the index updates (one ZADD/ZREM/SADD per call) over the ops.
-- KEYS: 1 {T}:ix:x, 2 {T}:unj (the index keys of EVERY op in the call: a standalone server
--       uses one pair for all accounts, a cluster batches per hash slot: redis_keys.py), then
--       one per op, in op order: its account hash {acct:ID}:a
-- ARGV: 1 the idempotency epoch of every op in the call (floor(now / retention): the client
--       cuts a batch where it changes), then per op, in the same order: its letter and its
--       arguments, only those it uses, its balance as the field "<balance>|" and its key as
--       the field "|<key>" (no per-op concatenation here; cost model: lua/_prelude.lua, each
--       ARGV element ~900 instructions):
--         'r' reserve (R: partial)       account, balance, key, reservation, amount, exp_us,
--                                        now_us
--         'c' commit, release the rest   account, balance, key, reservation, used
--         'k' commit, keep the rest      account, balance, key, reservation, used
--         'l' release                    account, balance, key, reservation
--         'd' debit (D: partial)         account, balance, key, amount, now_us
--         't' credit                     account, balance, key, amount
--         'u' commit (release the rest)  account, balance, key, reservation, used, then the
--             and reserve (commit_reserve) reserve's key, reservation, amount, exp_us, now_us
-- Returns an array with one element per op: exactly what the single-op script returns (the
-- fresh record, {replayed record}, {'unknown_account'}: lua/_prelude.lua; 'u': an array of
-- its commit's and reserve's replies, lua/commit_reserve.lua), or an error reply for that op
-- alone (bad arguments, or a runtime error caught by pcall).
-- The op functions are NOT in this file: charging/store/redis_lua.py prepends _prelude.lua and
-- every op file, so the logic exists once and the single-op scripts and this batch run the
-- same code.
-- A malformed layout (unknown letter, too few ARGV, KEYS not 2 + one per op) fails the whole
-- call before any op runs. Isolation: each op runs under pcall, so an op that raises fails
-- alone. Each op body parses every numeric ARGV it uses ONCE, before its first write (a bad
-- one raises there, answered 'ERR batch: an ARGV of op <j> is not a number'): with them
-- valid, and the account fields written only by these scripts, the bodies cannot raise
-- after their first write (their parsing, lookups and arithmetic come first; after that only
-- string.format('%d') of numbers, concatenation of strings and redis.call on keys the op was
-- given); Redis 7 does not refuse a script's writes for OOM once it has written. So an op is
-- applied wholly or not at all, and a batch never stops half way. An op's index updates are
-- noted only after its writes, and applied by flush() at the end (lua/_prelude.lua).
local OPS = {r = op_reserve, R = op_reserve, c = op_commit, k = op_commit, l = op_release,
             d = op_debit, D = op_debit, t = op_credit, u = op_commit_reserve}
local FLAG = {R = true, c = true, D = true}  -- partial (R, D), release the rest (c)
local NARG = {r = 7, R = 7, c = 5, k = 5, l = 4, d = 5, D = 5, t = 4, u = 10}
local ep = ARGV[1]
local epn = tonumber(ep)
-- (an integer: a 'nan' epoch would make every replay check false -- a retry charged again)
if not epn or epn % 1 ~= 0 then
  return redis.error_reply('ERR batch: ARGV 1 (the epoch) is not an integer')
end
local nargv, nkeys = #ARGV, #KEYS
-- the layout is checked whole BEFORE any op runs: a malformed call fails without writing
local p, nops = 2, 0
while p <= nargv do
  local n = NARG[ARGV[p]]
  if not n or p + n > nargv then
    return redis.error_reply('ERR batch: malformed op at ARGV[' .. p .. ']')
  end
  p, nops = p + 1 + n, nops + 1
end
if nops + 2 ~= nkeys then return redis.error_reply('ERR batch: KEYS do not match the ops') end
local out = {}
p = 2
for j = 1, nops do
  local letter = ARGV[p]
  -- (an op with fewer arguments ignores the next op's that follow: Lua drops extra ones)
  local ok, r = pcall(OPS[letter], KEYS[j + 2], ep, epn, FLAG[letter], ARGV[p + 1],
                      ARGV[p + 2], ARGV[p + 3], ARGV[p + 4], ARGV[p + 5], ARGV[p + 6],
                      ARGV[p + 7], ARGV[p + 8], ARGV[p + 9], ARGV[p + 10])
  if ok or (type(r) == 'table' and r.err) then
    out[j] = r
  elseif sfind(tostring(r), 'arithmetic', 1, true) then  -- 'x + 0' of a bad ARGV
    out[j] = redis.error_reply('ERR batch: an ARGV of op ' .. j .. ' is not a number')
  else
    out[j] = redis.error_reply('ERR batch: ' .. tostring(r))
  end
  p = p + 1 + NARG[letter]
end
flush(KEYS[1], KEYS[2])
return out
