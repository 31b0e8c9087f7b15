-- KEYS: leaves. ARGV: key prefix, most leaves to finish in one call.
-- Announces the leaves whose grace is over, unless the user came back (then it is no
-- longer in the room's `leaving`). Any server may run it; each leave is announced
-- once. Builds each room's keys from the prefix, as reap.lua does.
-- Returns how many due entries it looked at.
local p = ARGV[1]
local now = redis.call('TIME')
now = now[1] * 1000 + math.floor(now[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, entry in ipairs(due) do
  redis.call('ZREM', KEYS[1], entry)
  local sep = string.find(entry, '\n', 1, true)
  local room, user = string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1)
  local base = p .. 'room:' .. room
  local at = tonumber(redis.call('HGET', base .. ':leaving', user))
  if at and at <= now and redis.call('HEXISTS', base .. ':users', user) == 0 then
    redis.call('HDEL', base .. ':leaving', user)
    local name = redis.call('HGET', base .. ':names', user) or user
    redis.call('HDEL', base .. ':names', user)
    redis.call('PUBLISH', base, '0 ' .. cjson.encode({
      type = 'system', message = name .. ' left the room', event = 'leave',
      user_id = user, user = name }))
    if redis.call('HLEN', base .. ':users') == 0 and redis.call('HLEN', base .. ':leaving') == 0 then
      redis.call('SREM', p .. 'rooms', room)
    end
  end
end
return #due
