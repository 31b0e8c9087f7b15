//! The Lua scripts that change shared state in one step each. Each lives in its own
//! file under `lua/`, whose header says which KEYS and ARGV it takes and what it
//! returns; `redis::Script` loads it once per connection (`EVALSHA`, falling back to
//! `EVAL` after a Redis restart).
//!
//! Each script touches only the keys it is given, all in one cluster slot: a room's
//! (which share the room's hash tag, see [`super::keys`]) or the one key of a set
//! that spans rooms. What must happen in both (a room's presence and the `rooms` or
//! `leaves` sets) is two steps, ordered so that a server stopping between them
//! leaves nothing that no one finishes.

use redis::Script;

pub(super) struct Scripts {
    /// A message's id, stream entry and `PUBLISH`, together.
    pub(super) publish: Script,
    /// Where a room's ids stand (starting them if it has none), for a backlog read.
    pub(super) ids: Script,
    /// A connection enters a room's presence; the names present before it come back.
    pub(super) join: Script,
    /// A connection leaves a room's presence.
    pub(super) leave: Script,
    /// A server's share of a room's presence set to what it has: written back after
    /// an outage, or nothing for a dead server.
    pub(super) share: Script,
    /// A leave whose grace is over is announced.
    pub(super) finalize: Script,
    /// The room is listed in `rooms`, unless there are as many rooms as allowed.
    pub(super) admit: Script,
    /// The leaves due now are taken from `leaves` (to come back if not finished).
    pub(super) take_due: Script,
    /// A finished leave is forgotten in `leaves`.
    pub(super) done: Script,
}

impl Scripts {
    /// The scripts; `sharded` (on a Redis Cluster) publishes rooms' frames with
    /// `SPUBLISH`, to the room's shard only, instead of `PUBLISH` to every node.
    pub(super) fn new(sharded: bool) -> Self {
        let script = |text: &str| {
            if sharded {
                Script::new(&text.replace("'PUBLISH'", "'SPUBLISH'"))
            } else {
                Script::new(text)
            }
        };
        Scripts {
            publish: script(include_str!("lua/publish.lua")),
            ids: script(include_str!("lua/ids.lua")),
            join: script(include_str!("lua/room_join.lua")),
            leave: script(include_str!("lua/room_leave.lua")),
            share: script(include_str!("lua/room_share.lua")),
            finalize: script(include_str!("lua/room_finalize.lua")),
            admit: script(include_str!("lua/admit.lua")),
            take_due: script(include_str!("lua/take_due.lua")),
            done: script(include_str!("lua/done.lua")),
        }
    }

    /// The command that publishes a frame on a room's channel.
    pub(super) fn publish_command(sharded: bool) -> &'static str {
        if sharded { "SPUBLISH" } else { "PUBLISH" }
    }
}
