-- KEYS: seq, first, log. ARGV: retention in ms.
-- Where a room's ids stand, for a joining member's backlog. A room without ids yet
-- starts its sequence now, from the clock in microseconds as publish.lua would, so
-- the member's `welcome.last_id` is a real resume point: the room's first message
-- will get exactly the next id. Those keys expire after the retention like the rest.
-- Returns {first id, last id, oldest retained entry id or false}.
local seq = redis.call('GET', KEYS[1])
local first = redis.call('GET', KEYS[2])
if not seq then
  local now = redis.call('TIME')
  local id = tonumber(now[1]) * 1000000 + tonumber(now[2])
  seq = string.format('%.0f', id - 1)
  first = string.format('%.0f', id)
  redis.call('SET', KEYS[1], seq, 'PX', ARGV[1])
  redis.call('SET', KEYS[2], first, 'PX', ARGV[1])
end
local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
local oldest_id = false
if #oldest > 0 then oldest_id = oldest[1][1] end
return {first or false, seq, oldest_id}
