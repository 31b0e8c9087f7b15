-- KEYS (one room's, one slot): users, names, nodes, channel, leaving.
-- ARGV: node, user id, name, join frame.
-- A connection enters the room's presence. A user back within the grace of a leave
-- (still in `leaving`) is not announced again.
-- Returns who was present before, as user id, name, user id, name, ...
local before = redis.call('HGETALL', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[1] .. '|' .. ARGV[2], 1)
local total = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
if total == 1 then
  local returning = redis.call('HDEL', KEYS[5], ARGV[2]) == 1
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  if not returning then redis.call('PUBLISH', KEYS[4], '0 ' .. ARGV[4]) end
end
return before
