-- commit_reserve: a CCR-UPDATE's two ops in one (batch letter 'u'): commit what was used
-- against a reservation and release the rest (op_commit), then hold the next grant under a
-- new reservation (op_reserve), exactly as the two ops sent one after the other would --
-- unless the commit found no such reservation (its status is unknown_reservation: a hold that
-- expired or was never made). Then no reserve runs: the caller debits the usage instead and
-- reserves after that, as without this op (charging/ledger/sync_ops.py commit_reserve_now is
-- the embedded store's twin). One script op instead of two: one op on the wire, one reply.
-- KEYS/ARGV: it runs only inside the batch script (lua/batch.lua, letter 'u'); there is no
-- single-op script of it.
-- op_commit_reserve(..., _, account, B, opf, res, used, ropf, rres, amount, exp, now): the
-- commit's key field opf, reservation and used units, then the reserve's key field ropf
-- ("|<key>"), reservation, amount, expiry us and now us (the batch's ARGV order).
-- Returns {commit reply} or {commit reply, reserve reply} (each as its op alone answers).
local function op_commit_reserve(acc, ep, epn, _, account, B, opf, res, used, ropf, rres,
                                 amount, exp, now)
  -- The reserve's numbers are checked BEFORE the commit writes: an op is applied wholly or not
  -- at all (lua/batch.lua). 'x + 0' raises for a non-number before any write.
  local grant = amount + 0
  if not (grant >= 0 and grant <= 9007199254740991 and grant % 1 == 0) then
    return redis.error_reply('ERR the reserve amount is not an integer in [0, 2^53-1]')
  end
  if (exp + 0) % 1 ~= 0 or (now + 0) % 1 ~= 0 then
    return redis.error_reply('ERR the reserve expiry or now is not an integer')
  end
  local c = op_commit(acc, ep, epn, true, account, B, opf, res, used)
  local rec = c
  if type(c) == 'table' then
    if c.err then return c end  -- a bad 'used': nothing was written
    rec = c[1]  -- a replay (or 'unknown_account')
  end
  if smatch(rec, '^[^|]*|([^|]*)|') == 'unknown_reservation' then return {c} end
  return {c, op_reserve(acc, ep, epn, false, account, B, ropf, rres, amount, exp, now)}
end
