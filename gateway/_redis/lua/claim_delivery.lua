-- The lock on one payment's hook, unless the payment is delivered already (one round trip
-- where a lock and a check were two). KEYS: done marker, lock. ARGV: token, ttl ms.
-- 1: taken; 0: another holds it; -1: delivered already, nothing taken.
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return 0
