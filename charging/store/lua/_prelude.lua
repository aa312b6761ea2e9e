-- Shared helpers of the single-balance ops (reserve, commit, release, debit, credit) and the
-- balance state's layout. Not a script by itself: charging/store/redis_lua.py builds each
-- single-op script as this prelude + the op's file (which defines "local function
-- op_<name>(...)") + a footer calling it on KEYS/ARGV then flush(); the batch script is this
-- prelude + every op file + batch.lua; create, get and expire start with it too (the state).
-- The single-op scripts share one KEYS/ARGV layout:
--   KEYS[1] {acct:ID}:a   the account hash (layout: charging/store/redis_keys.py): meta,
--                         "<bal>|" -> the balance state (binary: below), "<bal>|h|<res>" ->
--                         "<amount>:<exp_us>" holds, "|<op key>" -> cached op record,
--                         "oe" -> "<newest op epoch>[:<prune cursor>]"
--   KEYS[2] {T}:ix:x      reservation index (zset): "<account>|<balance>|<reservation>" by
--                         expiry in epoch us; the TTL sweep reads it
--   KEYS[3] {T}:unj       unjournaled index (set): "<account>|<key>" of every op that changed
--                         state and is not yet confirmed journaled
--   ARGV[1] account  ARGV[2] balance  ARGV[3] idempotency epoch (floor(now / retention))
--   ARGV[4] now (epoch us)  ARGV[5] op key  ARGV[6..] the op's own arguments
-- An op function takes (acc, ep, epn, flag, account, B, opf, <its own arguments>): acc the
-- account hash key, ep the epoch string and epn its number, flag the op's boolean (reserve,
-- debit: partial; commit: release the rest), B the balance id + '|' (its state field), opf
-- '|' + the op key (its record field), then its own ARGV strings in the batch's order (the
-- batch script sends B and opf ready-made and only the arguments an op uses: lua/batch.lua;
-- redis_lua.py maps each single-op script's ARGV onto this).
-- An op that changed state appends "<account>|<key>" (account .. opf) to UNJ.
-- Reply: a fresh result is its op record, the string "<epoch>|<status>|<granted>|<amount>|
-- <available>|<low>|<effect>|<hold>|<hold_exp>|<has_hold>|<balance>|<reservation>" (hold_exp
-- -1: reservation gone), also kept in the hash as the field "|<key>"; a replay is that cached
-- record in an array of one, {record}; an unknown account is {'unknown_account'} (not
-- cached: nothing to attach it to). A record is valid while its epoch >= the op's epoch - 1 (a
-- key is remembered at least one retention and at most two, like the embedded store); after
-- an epoch change the next ops prune stale records a few at a time (HSCAN cursor in "oe").
-- Index updates are DEFERRED: an op notes its reservation's new expiry (or removal) in IXC and
-- its unjournaled member in UNJ; flush() applies them once per script call (one ZADD, one
-- ZREM, one SADD for a whole batch: a batch's ops share their index keys, lua/batch.lua).
-- Cost model (why the code looks like this; callgrind instructions, Redis 7.0, see
-- benchmarks/_stores_redis_callgrind.py): each redis.call ~6k (fake client, argv objects,
-- lookup, reply -> Lua) plus the command; each reply element converted to RESP ~900 (so a
-- fresh result is one string, not an array); tonumber() ~1.1k (two strtod: lua_isnumber then
-- lua_tonumber) while arithmetic coercion of a string ("x + 0") is one strtod: used on the
-- fields the scripts wrote themselves (canonical), tonumber() kept for ARGV (it must answer
-- nil, not raise); string.format ~1.3k per call + ~760 per %d (sprintf), a '..' chain one
-- string; a table or closure per op ~1k + GC. So an op is one HMGET, one HSET (a hold
-- that goes is marked released in it), no table, no closure, numbers formatted only where
-- computed.
-- Amounts are integers below 2^53 (exact in Lua doubles); computed ones are written into text
-- with string.format('%d'), never tostring or '..' on a number (14 significant digits).
-- The balance state field "<bal>|" of an account hash. Binary, so that an op neither
-- pattern-matches nor converts text to numbers (string.match of the old "a:r:c:x:l" text plus
-- its number coercions cost ~7k instructions per op, this unpack ~2.5k: callgrind, see the
-- cost model in _prelude.lua):
--   struct '<Bddddd' = 0 (the format mark), amount, reserved, credit limit, expiry us (+inf:
--   none), low threshold (-inf: none); then the amount's decimal text (what the op records
--   carry: an op that leaves the amount alone formats nothing).
-- Doubles hold every integer below 2^53 exactly, and amounts are bounded so (base.MAX_AMOUNT,
-- checked by the client and by the scripts). An account written by an older version holds the
-- text "<amount>:<reserved>:<credit limit>:<expiry us>:<low threshold>" (the last two may be
-- empty): read as well, and rewritten in this format by the next op that writes the state.
local spack, sunpack = struct.pack, struct.unpack
local INF = 1 / 0

-- The state *st* as (amount text, amount, reserved, credit limit, expiry, low threshold).
local function state_read(st)
  if #st > 41 then
    local m, a, r, c, x, l = sunpack('<Bddddd', st)
    if m == 0 then return string.sub(st, 42), a, r, c, x, l end
  end
  local a, r, c, x, l = string.match(st, '^([^:]*):([^:]*):([^:]*):([^:]*):(.*)$')
  return a, a + 0, r + 0, c + 0, x == '' and INF or x + 0, l == '' and -INF or l + 0
end

-- The state field's value; *at* is the decimal text of *amount*.
local function state_write(at, amount, reserved, credit, expiry, low)
  return spack('<Bddddd', 0, amount, reserved, credit, expiry, low) .. at
end

-- The library functions the ops use, as locals (upvalues of the op functions): a global
-- lookup is two table reads per use (_G, then the library table), an upvalue none.
local rcall, sfmt, smatch, sfind, ssub = redis.call, string.format, string.match, string.find,
  string.sub
local tonumber, tostring, type, pcall, unpack = tonumber, tostring, type, pcall, unpack
local IXC = {}  -- reservation index member -> its new expiry string, or false: removed
local UNJ, NUNJ = {}, 0  -- unjournaled members "<account>|<key>", in op order

-- The slow path of an op that writes its record (the account's first op, a new epoch, an op
-- from an older epoch, a prune in progress): update "oe" and prune one HSCAN page of records
-- older than the window (memory only: the replay check already ignores them) and of released
-- holds (their '' marks, see below: absent and '' mean the same). *opf* is the op's own
-- record field (written by the caller: never pruned here).
local function epoch_slow(acc, ep, epn, opf, oe)
  local newest, cur = epn, nil
  if oe then
    local sep = sfind(oe, ':', 1, true)
    local e = tonumber(sep and ssub(oe, 1, sep - 1) or oe)
    if sep then cur = ssub(oe, sep + 1) end
    if e < newest then
      cur = '0'  -- a new epoch: records two epochs old are stale from now on
    else
      newest = e
    end
  end
  if cur then
    local scan = rcall('HSCAN', acc, cur, 'COUNT', 64)
    local stale, items = {}, scan[2]
    for i = 1, #items, 2 do
      local f, v = items[i], items[i + 1]
      if string.byte(f) == 124 then  -- '|': an op record
        if tonumber(ssub(v, 1, sfind(v, '|', 1, true) - 1)) < newest - 1 and f ~= opf then
          stale[#stale + 1] = f
        end
      elseif v == '' and sfind(f, '|h|', 1, true) then  -- a released hold
        stale[#stale + 1] = f
      end
    end
    if #stale > 0 then rcall('HDEL', acc, unpack(stale)) end
    cur = scan[1]
  end
  local value = sfmt('%d', newest)
  if cur and cur ~= '0' then value = value .. ':' .. cur end
  if value ~= oe then rcall('HSET', acc, 'oe', value) end
end

-- Write a refusal's record (no state change) and return it.
local function refuse(acc, ep, epn, opf, oe, rec)
  rcall('HSET', acc, opf, rec)
  if oe ~= ep then epoch_slow(acc, ep, epn, opf, oe) end
  return rec
end

-- The start every balance op shares: ONE HMGET (the op's record, "oe", the balance state
-- and, for an op on a reservation, its hold field *hf*), the replay check, unknown account /
-- balance (the refusal's record names the balance and *res*, '' for ops without one).
-- A hold field is "<amount>:<expiry us>", or '' once released: commit and release mark it so
-- in the HSET they write anyway instead of one more call (HDEL, ~1.4k instructions per op);
-- epoch_slow prunes the marks with the stale records.
-- Returns the reply to answer at once (a replay or a refusal), or nil followed by "oe", the
-- hold value (nil: none, released, or not asked) and the state (layout above): the amount's
-- decimal text, then as numbers amount, reserved, credit limit, expiry us (+inf: none), low
-- threshold (-inf: none).
local function open_balance(acc, B, ep, epn, opf, res, hf)
  local b
  if hf then
    b = rcall('HMGET', acc, opf, 'oe', B, hf)
  else
    b = rcall('HMGET', acc, opf, 'oe', B)
  end
  local rec = b[1]
  if rec and tonumber(ssub(rec, 1, sfind(rec, '|', 1, true) - 1)) >= epn - 1 then
    return {rec}  -- replay: the record is still within the window
  end
  local oe, st = b[2], b[3]
  if not st then
    if rcall('HEXISTS', acc, 'kind') == 0 then return {'unknown_account'} end
    return refuse(acc, ep, epn, opf, oe, ep .. '|unknown_balance|0|0|0|0|0|0|0|0|' .. B .. res)
  end
  local hv = b[4]
  if hv == '' then hv = nil end  -- released
  if #st > 41 then  -- (state_read inlined: the common case, one call fewer)
    local m, a, r, c, x, l = sunpack('<Bddddd', st)
    if m == 0 then return nil, oe, hv, ssub(st, 42), a, r, c, x, l end
  end
  return nil, oe, hv, state_read(st)
end

-- The end of an op that moves a balance's amount by *delta* (credit, debit): the new state
-- (only when delta ~= 0) and the op record in ONE HSET, the epoch bookkeeping, and the op noted
-- unjournaled when it changed state. Returns the fresh reply (the record string).
local function write_amount(acc, account, B, ep, epn, opf, oe, rec, delta, amt, r, c, x, l)
  if delta ~= 0 then
    rcall('HSET', acc, B, state_write(sfmt('%d', amt + delta), amt + delta, r, c, x, l), opf,
          rec)
  else
    rcall('HSET', acc, opf, rec)
  end
  if oe ~= ep then epoch_slow(acc, ep, epn, opf, oe) end
  if delta ~= 0 then
    NUNJ = NUNJ + 1
    UNJ[NUNJ] = account .. opf
  end
  return rec
end

-- Apply the deferred index updates of this script call (ix: the reservation zset, unj: the
-- unjournaled set; one of each for all the call's ops).
-- (in commands of at most 1000 arguments: unpack() is bounded by the Lua C stack, 8000)
local function flush(ix, unj)
  for i = 1, NUNJ, 1000 do
    rcall('SADD', unj, unpack(UNJ, i, math.min(i + 999, NUNJ)))
  end
  local add, del, na, nd = {}, {}, 0, 0
  for m, e in pairs(IXC) do
    if e then
      add[na + 1], add[na + 2] = e, m
      na = na + 2
    else
      nd = nd + 1
      del[nd] = m
    end
  end
  for i = 1, na, 1000 do rcall('ZADD', ix, unpack(add, i, math.min(i + 999, na))) end
  for i = 1, nd, 1000 do rcall('ZREM', ix, unpack(del, i, math.min(i + 999, nd))) end
end
