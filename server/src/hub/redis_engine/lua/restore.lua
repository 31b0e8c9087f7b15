-- KEYS: users, names, nodes, rooms, node rooms, channel, leaving, leaves.
-- ARGV: room, node, grace in ms, then per local user: user id, connections, join
-- frame, leave frame.
-- Sets this node's share of presence to what it really has, announcing users who
-- appear or disappear as a result (a disappearance after the grace, as leave.lua).
local node, grace = ARGV[2], tonumber(ARGV[3])
local now = redis.call('TIME')
now = now[1] * 1000 + math.floor(now[2] / 1000)
local wanted = {}
local frames = {}
for i = 4, #ARGV, 4 do
  wanted[ARGV[i]] = tonumber(ARGV[i + 1])
  frames[ARGV[i]] = { ARGV[i + 2], ARGV[i + 3] }
end
local recorded = {}
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  local sep = string.find(fields[i], '|', 1, true)
  if sep and string.sub(fields[i], 1, sep - 1) == node then
    recorded[string.sub(fields[i], sep + 1)] = tonumber(fields[i + 1])
  end
end
local users = {}
for user in pairs(wanted) do users[user] = true end
for user in pairs(recorded) do users[user] = true end
for user in pairs(users) do
  local delta = (wanted[user] or 0) - (recorded[user] or 0)
  if delta ~= 0 then
    local field = node .. '|' .. user
    if (wanted[user] or 0) > 0 then
      redis.call('HSET', KEYS[3], field, wanted[user])
    else
      redis.call('HDEL', KEYS[3], field)
    end
    local total = redis.call('HINCRBY', KEYS[1], user, delta)
    if total <= 0 then
      redis.call('HDEL', KEYS[1], user)
      if grace > 0 then
        redis.call('HSET', KEYS[7], user, now + grace)
        redis.call('ZADD', KEYS[8], now + grace, ARGV[1] .. '\n' .. user)
      else
        redis.call('HDEL', KEYS[2], user)
        if frames[user] then redis.call('PUBLISH', KEYS[6], '0 ' .. frames[user][2]) end
      end
    elseif total == delta and frames[user] then
      local name = cjson.decode(frames[user][1])['user']
      local returning = redis.call('HDEL', KEYS[7], user) == 1
      redis.call('HSET', KEYS[2], user, name)
      if not returning then redis.call('PUBLISH', KEYS[6], '0 ' .. frames[user][1]) end
    end
  end
end
if next(wanted) then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[1])
elseif redis.call('HLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[7]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
end
return 1
