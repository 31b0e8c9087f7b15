-- KEYS: rooms. ARGV: room, most rooms that may exist.
-- Lists the room among those with members, unless that would make more rooms than
-- the servers may hold (then changes nothing).
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0
  and redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return redis.error_reply('TOOMANYROOMS there are as many rooms as the servers may hold')
end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
