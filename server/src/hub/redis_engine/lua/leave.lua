-- KEYS: users, names, nodes, rooms, node rooms, channel.
-- ARGV: room, node, user id, leave frame, "1" if the node has no members left there.
if ARGV[5] == '1' then redis.call('SREM', KEYS[5], ARGV[1]) end
local field = ARGV[2] .. '|' .. ARGV[3]
local mine = redis.call('HINCRBY', KEYS[3], field, -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], field) end
-- Nothing recorded for this connection (Redis lost it): nothing to undo.
if mine < 0 then return 0 end
local total = redis.call('HINCRBY', KEYS[1], ARGV[3], -1)
if total <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[3])
  redis.call('PUBLISH', KEYS[6], '0 ' .. ARGV[4])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
end
return total
