-- Idempotent journal append: one stream entry per paymentRequestId, even for concurrent
-- duplicates on many pods; the VA's paid marker is set in the same step.
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local id = redis.call('XADD', KEYS[2], '*', 'e', ARGV[1])
redis.call('SET', KEYS[1], id .. '\n' .. ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
return {1, id}
