-- KEYS: seq, first, log, channel[, ref].
-- ARGV: history size, frame prefix, frame suffix, retention in ms[, ref window in ms].
-- With a ref key: if this user's message with this ref was published within the
-- window, nothing is published and its id comes back; otherwise the new id is
-- remembered under the ref key for the window.
-- Returns {id, 1 if repeated else 0}.
if KEYS[5] then
  local known = redis.call('GET', KEYS[5])
  if known then return {known, 1} end
end
local id = redis.call('INCR', KEYS[1])
if id == 1 then
  -- A new room (or a Redis that lost its data): ids start from the clock in
  -- microseconds, so they keep increasing past anything a client has seen.
  local now = redis.call('TIME')
  id = tonumber(now[1]) * 1000000 + tonumber(now[2])
  redis.call('SET', KEYS[1], string.format('%.0f', id))
  redis.call('SET', KEYS[2], string.format('%.0f', id))
end
local sid = string.format('%.0f', id)
local frame = ARGV[2] .. sid .. ARGV[3]
if tonumber(ARGV[1]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], sid .. '-0', 'f', frame)
end
redis.call('PUBLISH', KEYS[4], sid .. ' ' .. frame)
-- A quiet room's history and ids go away; a later message starts a new sequence
-- from the clock, so ids still only increase.
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
if KEYS[5] then redis.call('SET', KEYS[5], sid, 'PX', ARGV[5]) end
return {sid, 0}
