-- KEYS: users, names, nodes, rooms, node rooms, channel, leaving, leaves.
-- ARGV: room, node, user id, leave frame, "1" if the node has no members left there,
-- grace in ms.
-- The user's last connection anywhere: with a grace, the leave waits in `leaving`
-- (and in `leaves`, for finalize.lua) and the user stays listed; without, it is
-- announced now.
if ARGV[5] == '1' then redis.call('SREM', KEYS[5], ARGV[1]) end
local field = ARGV[2] .. '|' .. ARGV[3]
local mine = redis.call('HINCRBY', KEYS[3], field, -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], field) end
-- Nothing recorded for this connection (Redis lost it): nothing to undo.
if mine < 0 then return 0 end
local total = redis.call('HINCRBY', KEYS[1], ARGV[3], -1)
if total <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[3])
  local grace = tonumber(ARGV[6])
  if grace > 0 then
    local now = redis.call('TIME')
    local due = now[1] * 1000 + math.floor(now[2] / 1000) + grace
    redis.call('HSET', KEYS[7], ARGV[3], due)
    redis.call('ZADD', KEYS[8], due, ARGV[1] .. '\n' .. ARGV[3])
  else
    redis.call('HDEL', KEYS[2], ARGV[3])
    redis.call('PUBLISH', KEYS[6], '0 ' .. ARGV[4])
    if redis.call('HLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[7]) == 0 then
      redis.call('SREM', KEYS[4], ARGV[1])
    end
  end
end
return total
