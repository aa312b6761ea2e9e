-- Shared helpers prepended to every single-balance op script (reserve, commit, release, debit,
-- credit). Not a script by itself. Those scripts share one KEYS/ARGV layout:
--   KEYS[1] {acct:ID}:a        the account hash (layout: charging/store/redis_keys.py): meta,
--                              "<bal>|" -> "<amount>:<reserved>:<credit limit>:<expiry us>:<low
--                              threshold>" (the last two may be empty), "<bal>|h|<res>" ->
--                              "<amount>:<exp_us>" holds, "|<op key>" -> cached op record,
--                              "oe" -> "<newest op epoch>[:<prune cursor>]"
--   KEYS[2] {<slot tag>}:ix:x  slot index (zset): "<account>|<balance>|<reservation>" by expiry
--                              in epoch us; the TTL sweep reads it
--   KEYS[3] {<slot tag>}:unj   slot index (set): "<account>|<key>" of every op that changed
--                              state here and is not yet confirmed journaled
--   ARGV[1] account  ARGV[2] balance  ARGV[3] idempotency epoch (floor(now / retention))
--   ARGV[4] now (epoch us)  ARGV[5] op key  ARGV[6..] the op's own arguments
-- A fresh result is the flat array {status, granted, amount_after, available_after, low,
-- effect, hold, hold_exp_us (-1: reservation gone; a string when copied from a field/ARGV),
-- has_hold}; a replay returns the cached record string "<epoch>|<status>|<granted>|<amount>|
-- <available>|<low>|<effect>|<hold>|<hold_exp>|<has_hold>|<balance>|<reservation>" instead;
-- an unknown account returns {'unknown_account'} (not cached: nothing to attach it to).
-- A record is valid while its epoch >= the op's epoch - 1 (a key is remembered at least one
-- retention and at most two, like the embedded store); after an epoch change the next ops
-- prune stale records a few at a time (HSCAN cursor kept in "oe").
-- Cost model (why the scripts look like this; measured in instructions per EVALSHA under
-- callgrind, see benchmarks/_stores_redis.py): every field HMGET asks for (~3.5k), every
-- closure a script defines (~1k, created on EVERY call: hence one helper, and inline code),
-- every number<->string conversion, table and new string costs; so an op reads 4 fields (its
-- record, "oe", the balance state in one field, the hold), compares strings instead of parsing
-- them, copies ARGV/field strings into the record instead of formatting numbers, and makes
-- one HMGET, one HSET and the index updates.
-- Amounts are integers below 2^53 (exact in Lua doubles); computed ones are written back with
-- string.format('%d'), never tostring or '..' on a number (14 significant digits).
local ACC, KEY, EP = KEYS[1], ARGV[5], ARGV[3]
-- the epoch, parsed once (every body returns NAN(3) first when it is not a number; the other
-- numeric ARGV are parsed by the bodies where they use them, before their first write)
local EPN = tonumber(EP)
local OPF = '|' .. KEY
local B = ARGV[2] .. '|'

-- Write the op record *rec* (plus the caller's field updates in *sets*) with one HSET; mark
-- the op unjournaled when it changed state; return the fresh reply. The slow path (the
-- account's first op, a new epoch, an op from an older epoch, a prune in progress) updates
-- "oe" and prunes one HSCAN page of records older than the window (memory only: the replay
-- check already ignores them).
local function finish(reply, rec, mutated, sets, oe)
  sets[#sets + 1] = OPF
  sets[#sets + 1] = rec
  if oe ~= EP then
    local newest, cur = EPN, nil
    if oe then
      local sep = string.find(oe, ':', 1, true)
      local e = tonumber(sep and string.sub(oe, 1, sep - 1) or oe)
      if sep then cur = string.sub(oe, sep + 1) end
      if e < newest then
        cur = '0'  -- a new epoch: records two epochs old are stale from now on
      else
        newest = e
      end
    end
    if cur then
      local scan = redis.call('HSCAN', ACC, cur, 'MATCH', '|*', 'COUNT', 64)
      local stale, items = {}, scan[2]
      for i = 1, #items, 2 do
        local v = items[i + 1]
        if tonumber(string.sub(v, 1, string.find(v, '|', 1, true) - 1)) < newest - 1
            and items[i] ~= OPF then
          stale[#stale + 1] = items[i]
        end
      end
      if #stale > 0 then redis.call('HDEL', ACC, unpack(stale)) end
      cur = scan[1]
    end
    local value = string.format('%d', newest)
    if cur and cur ~= '0' then value = value .. ':' .. cur end
    if value ~= oe then
      sets[#sets + 1] = 'oe'
      sets[#sets + 1] = value
    end
  end
  redis.call('HSET', ACC, unpack(sets))
  if mutated then redis.call('SADD', KEYS[3], ARGV[1] .. '|' .. KEY) end
  return reply
end
