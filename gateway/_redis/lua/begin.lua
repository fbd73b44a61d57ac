-- The inquiry hot path in one round trip: claim the X-EXTERNAL-ID (KEYS[1]), read the cached
-- answer (KEYS[2]) and, on a miss, take the single-flight resolve lock (KEYS[3]) for ARGV[5] ms
-- with this caller's token ARGV[4].
-- Returns {0, cached or false, 1 if the lock was taken} for a new claim, {1, existing} otherwise.
-- On a hit the claim keeps the outcome ('H' .. fingerprint .. outcome), so an identical retry
-- is rendered from it again and a hit needs no second command.
local existing = redis.call('GET', KEYS[1])
if existing then return {1, existing} end
if #KEYS > 1 then
  local cached = redis.call('GET', KEYS[2])
  if cached then
    redis.call('SET', KEYS[1], ARGV[3] .. cached, 'PX', ARGV[2])
    return {0, cached, 0}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if #KEYS > 2 and redis.call('SET', KEYS[3], ARGV[4], 'NX', 'PX', ARGV[5]) then
  return {0, false, 1}
end
return {0, false, 0}
