-- KEYS: leaves. ARGV: member, the retry time `take_due.lua` gave it.
-- Forgets a leave once finished, unless a later leave of that user in that room
-- gave it a new due time meanwhile.
-- Returns 1 if forgotten.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
