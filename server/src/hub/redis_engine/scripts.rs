//! The Lua scripts that change shared state in one step each. Each lives in its own
//! file under `lua/`, whose header says which KEYS and ARGV it takes and what it
//! returns; `redis::Script` loads it once per connection (`EVALSHA`, falling back to
//! `EVAL` after a Redis restart).

use redis::Script;

pub(super) struct Scripts {
    /// A message's id, stream entry and `PUBLISH`, together.
    pub(super) publish: Script,
    /// Where a room's ids stand (starting them if it has none), for a backlog read.
    pub(super) ids: Script,
    /// A connection enters presence; the names present before it come back.
    pub(super) join: Script,
    /// A connection leaves presence.
    pub(super) leave: Script,
    /// After an outage: this server's share of a room's presence, written back.
    pub(super) restore: Script,
    /// A dead server's members leave every room's presence.
    pub(super) reap: Script,
    /// Leaves whose grace is over are announced.
    pub(super) finalize: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Scripts {
            publish: Script::new(include_str!("lua/publish.lua")),
            ids: Script::new(include_str!("lua/ids.lua")),
            join: Script::new(include_str!("lua/join.lua")),
            leave: Script::new(include_str!("lua/leave.lua")),
            restore: Script::new(include_str!("lua/restore.lua")),
            reap: Script::new(include_str!("lua/reap.lua")),
            finalize: Script::new(include_str!("lua/finalize.lua")),
        }
    }
}
