-- KEYS (one room's, one slot): users, names, nodes, channel, leaving.
-- ARGV: node, user id, leave frame, when the leave is due (ms since the epoch; `0`
-- announces it now).
-- A connection leaves the room's presence. The user's last connection anywhere:
-- with a due time, the leave waits in `leaving` (the caller put the room and user in
-- `leaves` at that time first: `take_due.lua`, `room_finalize.lua`) and the name
-- stays; without, it is announced now.
-- Returns {the user's connections left, 1 if nobody is present or leaving}.
local field = ARGV[1] .. '|' .. ARGV[2]
local mine = redis.call('HINCRBY', KEYS[3], field, -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], field) end
local total = 0
-- Nothing recorded for this connection (Redis lost it): nothing to undo.
if mine >= 0 then
  total = redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
  if total <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[2])
    if ARGV[4] ~= '0' then
      redis.call('HSET', KEYS[5], ARGV[2], ARGV[4])
    else
      redis.call('HDEL', KEYS[2], ARGV[2])
      redis.call('PUBLISH', KEYS[4], '0 ' .. ARGV[3])
    end
  end
end
local empty = redis.call('HLEN', KEYS[1]) == 0 and redis.call('HLEN', KEYS[5]) == 0
return {total, empty and 1 or 0}
