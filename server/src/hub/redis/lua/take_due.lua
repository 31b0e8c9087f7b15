-- KEYS: leaves. ARGV: now (ms since the epoch), most entries to take, when a taken
-- entry comes due again (ms since the epoch).
-- Takes the leaves due by now, each `"<room>\n<user id>"`: their scores move to
-- the retry time, so if the server that took them stops before finishing them
-- (`room_finalize.lua`, then `done.lua`), another takes them then.
-- Returns member, due, member, due, ...
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #due, 2 do
  redis.call('ZADD', KEYS[1], ARGV[3], due[i])
end
return due
