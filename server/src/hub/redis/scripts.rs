//! The Lua scripts that change shared state in one step each.

use redis::Script;

pub(super) struct Scripts {
    pub(super) publish: Script,
    pub(super) join: Script,
    pub(super) leave: Script,
    pub(super) restore: Script,
    pub(super) reap: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            publish: Script::new(PUBLISH_LUA),
            join: Script::new(JOIN_LUA),
            leave: Script::new(LEAVE_LUA),
            restore: Script::new(RESTORE_LUA),
            reap: Script::new(REAP_LUA),
        }
    }
}

/// KEYS: seq, first, log, channel.
/// ARGV: history size, frame prefix, frame suffix, retention in ms.
/// Returns the new message's id.
const PUBLISH_LUA: &str = r#"
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
return sid
"#;

/// KEYS: users, names, nodes, rooms, node rooms, channel.
/// ARGV: room, node, user id, name, join frame. Returns the names present before.
const JOIN_LUA: &str = r#"
local before = redis.call('HVALS', KEYS[2])
redis.call('HINCRBY', KEYS[3], ARGV[2] .. '|' .. ARGV[3], 1)
local total = redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
if total == 1 then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  redis.call('PUBLISH', KEYS[6], '0 ' .. ARGV[5])
end
return before
"#;

/// KEYS: users, names, nodes, rooms, node rooms, channel.
/// ARGV: room, node, user id, leave frame, "1" if the node has no members left there.
const LEAVE_LUA: &str = r#"
if ARGV[5] == '1' then redis.call('SREM', KEYS[5], ARGV[1]) end
local field = ARGV[2] .. '|' .. ARGV[3]
local mine = redis.call('HINCRBY', KEYS[3], field, -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], field) end
-- Nothing recorded for this connection (Redis lost it): nothing to undo.
if mine < 0 then return 0 end
local total = redis.call('HINCRBY', KEYS[1], ARGV[3], -1)
if total <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[3])
  redis.call('HDEL', KEYS[2], ARGV[3])
  redis.call('PUBLISH', KEYS[6], '0 ' .. ARGV[4])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
end
return total
"#;

/// KEYS: users, names, nodes, rooms, node rooms, channel.
/// ARGV: room, node, then per local user: user id, connections, join frame, leave frame.
/// Sets this node's share of presence to what it really has, announcing users who
/// appear or disappear as a result.
const RESTORE_LUA: &str = r#"
local node = ARGV[2]
local wanted = {}
local frames = {}
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
      redis.call('HDEL', KEYS[2], user)
      if frames[user] then redis.call('PUBLISH', KEYS[6], '0 ' .. frames[user][2]) end
    elseif total == delta and frames[user] then
      local name = cjson.decode(frames[user][1])['user']
      redis.call('HSET', KEYS[2], user, name)
      redis.call('PUBLISH', KEYS[6], '0 ' .. frames[user][1])
    end
  end
end
if next(wanted) then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('SADD', KEYS[5], ARGV[1])
elseif redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[4], ARGV[1])
end
return 1
"#;

/// KEYS: nodes. ARGV: node, key prefix. If the node's liveness key is gone, removes
/// its members from every room's presence and announces the users who left.
/// Returns how many rooms it had members in (0 if it is alive).
const REAP_LUA: &str = r#"
local node, p = ARGV[1], ARGV[2]
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
        local name = redis.call('HGET', base .. ':names', user) or user
        redis.call('HDEL', base .. ':users', user)
        redis.call('HDEL', base .. ':names', user)
        redis.call('PUBLISH', base, '0 ' .. cjson.encode({
          type = 'system', message = name .. ' left the room', event = 'leave', user = name }))
      end
    end
  end
  if redis.call('HLEN', base .. ':users') == 0 then redis.call('SREM', p .. 'rooms', room) end
end
redis.call('DEL', p .. 'node:' .. node .. ':rooms')
redis.call('SREM', KEYS[1], node)
return #rooms
"#;
