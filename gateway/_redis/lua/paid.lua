-- A payment of VA KEYS[1] was journaled: its cached answer must not offer the bill again.
-- A reusable bill stays; a closed bill (or, uncached, a closed payment: ARGV[3] == '1') is
-- answered "already paid" (ARGV[1]) for ARGV[2] ms until the merchant's hook has run; an open
-- bill is forgotten, so the resolver decides again. The cached value is the codec's JSON.
local cached = redis.call('GET', KEYS[1])
local closed = ARGV[3] == '1'
if cached then
  local ok, bill = pcall(cjson.decode, cached)
  if ok and type(bill) == 'table' and bill['t'] ~= nil then
    if bill['r'] == true then return 0 end
    closed = bill['t'] == 'C'
  end
end
if closed then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
return 1
