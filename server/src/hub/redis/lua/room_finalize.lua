-- KEYS (one room's, one slot): users, names, channel, leaving.
-- ARGV: user id, when `leaves` said the leave is due (ms since the epoch).
-- Announces a leave whose grace is over, unless the user came back (no longer in
-- `leaving`, or present again) or left again later (its due is later: that leave
-- has an entry of its own). Running it twice announces once.
-- Returns {1 if announced, 1 if nobody is present or leaving}.
local at = tonumber(redis.call('HGET', KEYS[4], ARGV[1]))
local announced = 0
if at and at <= tonumber(ARGV[2]) and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  redis.call('HDEL', KEYS[4], ARGV[1])
  local name = redis.call('HGET', KEYS[2], ARGV[1]) or ARGV[1]
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('PUBLISH', KEYS[3], '0 ' .. cjson.encode({
    type = 'system', message = name .. ' left the room', event = 'leave',
    user_id = ARGV[1], user = name }))
  announced = 1
end
local empty = redis.call('HLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[4]) == 0
return {announced, empty and 1 or 0}
