-- After a resolve: cache the answer (ARGV[1], for ARGV[2] ms; '' for none) and then give up
-- the resolve lock if this caller still holds it (token ARGV[3]; '' for none), so that the lock
-- never disappears before the answer is readable. One command where two were sent.
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
if ARGV[3] ~= '' and redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
return 1
