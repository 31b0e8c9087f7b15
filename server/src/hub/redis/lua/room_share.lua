-- KEYS (one room's, one slot): users, names, nodes, channel, leaving.
-- ARGV: node, when leaves are due (ms since the epoch; `0` announces them now), then
-- per user the node has: user id, connections, join frame, leave frame.
-- Sets the node's share of the room's presence to what it really has: after an
-- outage (Redis may have lost it, or reaped the node meanwhile), or nothing at all
-- for a dead node. Users who appear are announced (unless back within a grace);
-- users left with no connection leave as `room_leave.lua` has it (the caller put
-- them in `leaves` first).
-- Returns 1 if nobody is present or leaving, else 0.
local node, due = ARGV[1], ARGV[2]
local wanted, frames = {}, {}
for i = 3, #ARGV, 4 do
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
      if due ~= '0' then
        redis.call('HSET', KEYS[5], user, due)
      else
        local name = redis.call('HGET', KEYS[2], user) or user
        redis.call('HDEL', KEYS[2], user)
        local left = frames[user] and frames[user][2] or cjson.encode({
          type = 'system', message = name .. ' left the room', event = 'leave',
          user_id = user, user = name })
        redis.call('PUBLISH', KEYS[4], '0 ' .. left)
      end
    elseif total == delta and frames[user] then
      local name = cjson.decode(frames[user][1])['user']
      local returning = redis.call('HDEL', KEYS[5], user) == 1
      redis.call('HSET', KEYS[2], user, name)
      if not returning then redis.call('PUBLISH', KEYS[4], '0 ' .. frames[user][1]) end
    end
  end
end
local empty = redis.call('HLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[5]) == 0
return empty and 1 or 0
