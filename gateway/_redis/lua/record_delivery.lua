-- A payment's hook returned: mark it delivered, then give up the lock if this caller still
-- holds it. KEYS: done marker, lock. ARGV: token, ms the marker is kept.
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
