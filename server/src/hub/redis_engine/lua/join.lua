-- KEYS: users, names, nodes, rooms, node rooms, channel, leaving, leaves, the user's ban.
-- ARGV: room, node, user id, name, join frame, most rooms that may exist.
-- Returns who was present before, as user id, name, user id, name, ...
-- Refuses (changing nothing) a banned user, and to create a room beyond the most
-- rooms. A user back within the grace of a leave (still in `leaving`) is not
-- announced again.
if redis.call('EXISTS', KEYS[9]) == 1 then
  return redis.error_reply('BANNED the user is banned for now')
end
if redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 0
  and redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6]) then
  return redis.error_reply('TOOMANYROOMS there are as many rooms as the servers may hold')
end
local before = redis.call('HGETALL', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[2] .. '|' .. ARGV[3], 1)
local total = redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
if total == 1 then
  local returning = redis.call('HDEL', KEYS[7], ARGV[3]) == 1
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  if not returning then redis.call('PUBLISH', KEYS[6], '0 ' .. ARGV[5]) end
end
return before
