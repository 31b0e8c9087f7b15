-- KEYS: users, names, nodes, rooms, node rooms, channel.
-- ARGV: room, node, user id, name, join frame.
-- Returns who was present before, as user id, name, user id, name, ...
local before = redis.call('HGETALL', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[2] .. '|' .. ARGV[3], 1)
local total = redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
if total == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('PUBLISH', KEYS[6], '0 ' .. ARGV[5])
end
return before
