-- Delete a lock only if this caller still holds it (its token in ARGV[1]).
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
