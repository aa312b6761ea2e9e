-- confirm: forget ops the ledger has journaled durably (drop them from the slot's unjournaled set).
-- KEYS: 1 {<slot tag>}:unj (set of "<account>|<op key>")
-- ARGV: 1.. members "<account>|<op key>" (at most 1000 per call)
if #ARGV > 0 then redis.call('SREM', KEYS[1], unpack(ARGV)) end
return 1
