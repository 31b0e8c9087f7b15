-- KEYS: nodes. ARGV: node, key prefix, grace in ms. If the node's liveness key is
-- gone, removes its members from every room's presence; users with no connection
-- left leave as leave.lua does (after the grace, through `leaves`, or at once).
-- Returns how many rooms it had members in (0 if it is alive).
local node, p, grace = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = redis.call('TIME')
now = now[1] * 1000 + math.floor(now[2] / 1000)
if redis.call('EXISTS', p .. 'node:' .. node) == 1 then return 0 end
local rooms = redis.call('SMEMBERS', p .. 'node:' .. node .. ':rooms')
for _, room in ipairs(rooms) do
  local base = p .. 'room:' .. room
  local fields = redis.call('HGETALL', base .. ':nodes')
  for i = 1, #fields, 2 do
    local field, count = fields[i], tonumber(fields[i + 1])
    local sep = string.find(field, '|', 1, true)
    if sep and string.sub(field, 1, sep - 1) == node then
      local user = string.sub(field, sep + 1)
      redis.call('HDEL', base .. ':nodes', field)
      local total = redis.call('HINCRBY', base .. ':users', user, -count)
      if total <= 0 then
        redis.call('HDEL', base .. ':users', user)
        if grace > 0 then
          redis.call('HSET', base .. ':leaving', user, now + grace)
          redis.call('ZADD', p .. 'leaves', now + grace, room .. '\n' .. user)
        else
          local name = redis.call('HGET', base .. ':names', user) or user
          redis.call('HDEL', base .. ':names', user)
          redis.call('PUBLISH', base, '0 ' .. cjson.encode({
            type = 'system', message = name .. ' left the room', event = 'leave',
            user_id = user, user = name }))
        end
      end
    end
  end
  if redis.call('HLEN', base .. ':users') == 0 and redis.call('HLEN', base .. ':leaving') == 0 then
    redis.call('SREM', p .. 'rooms', room)
  end
end
redis.call('DEL', p .. 'node:' .. node .. ':rooms')
redis.call('SREM', KEYS[1], node)
return #rooms
