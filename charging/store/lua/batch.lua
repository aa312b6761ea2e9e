-- batch: run many single-balance ops (reserve, commit, release, debit, credit) in ONE call, in
-- order, and return one reply per op: amortises the fixed per-EVALSHA cost (~40k instructions
-- even for an empty script) and the index updates (one ZADD/ZREM/SADD per call) over the ops.
-- KEYS: 1 {T}:ix:x, 2 {T}:unj (the index keys of EVERY op in the call: a standalone server
--       uses one pair for all accounts, a cluster batches per hash slot: redis_keys.py), then
--       one per op, in op order: its account hash {acct:ID}:a
-- ARGV: per op, in the same order: <op letter> then that op's ARGV of its single-op script
--       (account, balance, epoch, now_us, key, ...: see the op's file) EXCEPT that the balance
--       comes as "<balance>|" and the key as "|<key>" (the fields they name: no per-op
--       concatenation here): 'r' reserve (9), 'c' commit (8), 'l' release (6), 'd' debit (7),
--       't' credit (6)
-- Returns an array with one element per op: exactly what the single-op script returns (the
-- fresh record, {replayed record}, {'unknown_account'}: lua/_prelude.lua), or an error reply
-- for that op alone (bad arguments, or a runtime error caught by pcall).
-- The op functions are NOT in this file: charging/store/redis_lua.py prepends _prelude.lua and
-- every op file, so the logic exists once and the single-op scripts and this batch run the
-- same code.
-- A malformed layout (unknown letter, too few ARGV, KEYS not 2 + one per op) fails the whole
-- call before any op runs. Isolation: each op runs under pcall, so an op that raises fails
-- alone. Each op body parses every numeric ARGV it uses ONCE, before its first write, and
-- answers 'ERR ARGV <i> is not a number' for a bad one: with them valid, and the account
-- fields written only by these scripts (canonical decimal strings), the bodies cannot raise
-- after their first write (their parsing, lookups and arithmetic come first; after that only
-- string.format('%d') of numbers, concatenation of strings and redis.call on keys the op was
-- given); Redis 7 does not refuse a script's writes for OOM once it has written. So an op is
-- applied wholly or not at all, and a batch never stops half way. An op's index updates are
-- noted only after its writes, and applied by flush() at the end (lua/_prelude.lua).
local OPS = {r = op_reserve, c = op_commit, l = op_release, d = op_debit, t = op_credit}
local NARG = {r = 9, c = 8, l = 6, d = 7, t = 6}
local nargv, nkeys = #ARGV, #KEYS
-- the layout is checked whole BEFORE any op runs: a malformed call fails without writing
local p, nops = 1, 0
while p <= nargv do
  local n = NARG[ARGV[p]]
  if not n or p + n > nargv then
    return redis.error_reply('ERR batch: malformed op at ARGV[' .. p .. ']')
  end
  p, nops = p + 1 + n, nops + 1
end
if nops + 2 ~= nkeys then return redis.error_reply('ERR batch: KEYS do not match the ops') end
local out, lep, lepn = {}, nil, nil
p = 1
for j = 1, nops do
  local letter = ARGV[p]
  local ep = ARGV[p + 3]
  if ep ~= lep then lep, lepn = ep, tonumber(ep) end  -- most ops of a call share the epoch
  local ok, r = pcall(OPS[letter], KEYS[j + 2], ARGV[p + 1], ARGV[p + 2], ep, lepn,
                      ARGV[p + 4], ARGV[p + 5], ARGV[p + 6], ARGV[p + 7], ARGV[p + 8],
                      ARGV[p + 9])
  if ok or (type(r) == 'table' and r.err) then
    out[j] = r
  else
    out[j] = redis.error_reply('ERR batch: ' .. tostring(r))
  end
  p = p + 1 + NARG[letter]
end
flush(KEYS[1], KEYS[2])
return out
