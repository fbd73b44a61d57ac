-- The merchant's hook has recorded a payment of VA KEYS[1]: drop its cached answer (the
-- "already paid" stand-in, or the bill) so that the resolver decides again, unless it is a
-- reusable bill. One script where a read and a delete were two awaited commands.
local cached = redis.call('GET', KEYS[1])
if not cached then return 0 end
local ok, bill = pcall(cjson.decode, cached)
if ok and type(bill) == 'table' and bill['r'] == true then return 0 end
redis.call('DEL', KEYS[1])
return 1
