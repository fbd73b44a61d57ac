-- Newest inquiry of a VA wins; an equal answered_at replaces (the reconciler noting a check).
local current = redis.call('ZSCORE', KEYS[2], ARGV[1])
if current and tonumber(current) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
