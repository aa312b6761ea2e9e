-- confirm: forget op keys the ledger has journaled durably; drop the account from the slot's
-- "has unjournaled ops" index when none is left.
-- KEYS: 1 {acct:ID}:unj, 2 {<slot tag>}:ix:u
-- ARGV: 1 account, 2.. op keys (at most 1000 per call)
if #ARGV > 1 then redis.call('SREM', KEYS[1], unpack(ARGV, 2)) end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return 1
